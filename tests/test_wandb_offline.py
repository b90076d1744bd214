"""logger=wandb with an API key but no reachable W&B server: a short probe, then offline logging
with a warning, instead of wandb's ~100 s of retries ending in a CommError.

Only loopback addresses are used: 127.0.0.1:9 (nothing listens: refused at once) and a local
socket that accepts connections but never answers (a hanging server).
"""

from __future__ import annotations

import socket
import time

from .helpers import TINY_DATA, run_cli, run_dirs

FAKE_KEY = "0123456789abcdef" * 2 + "01234567"  # 40 characters, the shape of a W&B API key


def test_probe_of_a_silent_server_gives_up_within_its_timeout():
    from explainbench.utils.network import url_unreachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # the kernel completes the handshake; nobody ever answers
        start = time.monotonic()
        reason = url_unreachable(f"http://127.0.0.1:{server.getsockname()[1]}", timeout=1.0)
    assert reason is not None and time.monotonic() - start < 3.0


def test_wandb_with_key_but_unreachable_server_logs_offline_quickly(tmp_path):
    env = {"WANDB_API_KEY": FAKE_KEY, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_MODE": ""}
    start = time.monotonic()
    proc = run_cli(
        "train.py",
        ["logger=wandb", *TINY_DATA, "trainer.max_epochs=1", "callbacks.model_summary=null"],
        tmp_path,
        timeout=90,  # today's behaviour (retries, then CommError) takes ~110 s
        env=env,
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "W&B server http://127.0.0.1:9 is unreachable" in proc.stderr + proc.stdout
    assert "WANDB_MODE=offline" in proc.stderr + proc.stdout
    (run_dir,) = run_dirs(proc.stdout)
    assert list((run_dir / "wandb").glob("offline-run-*")), "no offline W&B run was written"
    # the tiny run itself takes ~10 s; the W&B fallback may add at most the probe's 5 s
    assert elapsed < 45, f"took {elapsed:.0f} s"
