"""Is a server there? A bounded check before a library would retry for minutes."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request


def url_unreachable(url: str, timeout: float = 5.0) -> str | None:
    """``None`` when ``url`` answers an HTTP request within ``timeout`` seconds (any status, a 401
    or 404 included: the server is there), else the reason it did not.

    The request runs in a daemon thread so that a hanging DNS lookup, which no socket timeout
    covers, is bounded too.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(
                urllib.request.Request(url, method="HEAD"), timeout=timeout
            ).close()  # noqa: S310
            outcome.append(None)
        except urllib.error.HTTPError:
            outcome.append(None)
        except (urllib.error.URLError, OSError, ValueError) as err:
            outcome.append(str(getattr(err, "reason", err)))

    thread = threading.Thread(target=probe, name="url-probe", daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return outcome[0] if outcome else f"no answer within {timeout:.0f} s"
