"""README commands in tests: read them from README.md, claim them with a marker, run them.

Every command in a ```bash / ```sh / ```console block of README.md must be run somewhere
(acceptance 3 of issue 16). A test claims a command with ``@pytest.mark.readme("<command>")``
and runs it through the ``readme`` fixture (tests/conftest.py), which hands it the claimed words
as a prefix: the test may only *append* size-shrinking overrides (tiny data, ``debug=fdr``,
``data.root=<fixture>``) and substitute the README's placeholders (``<run>``). The fixture fails
the test when a claimed command was never run, so a marker cannot claim more than the test does.
tests/test_readme_commands.py checks, without running anything, that every README command is
claimed by some marker (found by reading the test sources with ``ast``) or listed as run outside
pytest, and that no claim is stale.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

from .helpers import cli_env

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELL_FENCES = ("bash", "sh", "shell", "console")
PLACEHOLDER = re.compile(r"<[A-Za-z_][\w-]*>")
# the scripts whose runs write under paths.log_dir: a test keeps them in its tmp_path
HYDRA_APPS = ("train.py", "evaluate.py")


def normalize(command: str) -> str:
    """One spelling per command: shell words joined by one space, comments dropped."""
    return " ".join(shlex.split(command, comments=True))


def readme_commands(text: str) -> list[str]:
    """The commands of the shell blocks of a Markdown text, in order: ``\\`` continuations
    joined, comments and blank lines dropped; in ```console blocks only ``$ `` lines count."""
    commands, fence, pending = [], None, ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip().lower()
            pending = ""
            continue
        if fence not in SHELL_FENCES:
            continue
        if fence == "console":
            if not stripped.startswith("$ ") and not pending:
                continue
            stripped = stripped.removeprefix("$ ")
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        command = normalize(pending + stripped)
        pending = ""
        if command:
            commands.append(command)
    return commands


def claimed_in_sources(paths: list[Path]) -> dict[str, list[str]]:
    """``pytest.mark.readme("...")`` strings in test sources, read with ``ast`` (nothing is
    imported or run): normalized command -> the ``file:line`` places that claim it."""
    claims: dict[str, list[str]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "readme"
                and isinstance(node.func.value, ast.Attribute)
                and node.func.value.attr == "mark"
            ):
                continue
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            for arg in node.args:
                if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                    raise ValueError(f"{where}: readme marker arguments must be string literals")
                claims.setdefault(normalize(arg.value), []).append(where)
    return claims


class ReadmeRunner:
    """The commands a test claims, handed out as argv / overrides with placeholders filled in.

    ``command`` may be left out when the test claims exactly one; naming one the test does not
    claim is an error, so the string in the marker is the string that runs."""

    def __init__(self, claimed: list[str]):
        self.claimed = [normalize(c) for c in claimed]
        self.ran: set[str] = set()

    def words(self, command: str | None = None, subs: dict[str, object] | None = None) -> list[str]:
        if command is None:
            if len(self.claimed) != 1:
                raise ValueError(f"name the command: this test claims {self.claimed}")
            command = self.claimed[0]
        command = normalize(command)
        if command not in self.claimed:
            raise ValueError(f"{command!r} is not claimed by this test's readme marker")
        self.ran.add(command)
        words = []
        for word in shlex.split(command):
            for name, value in (subs or {}).items():
                word = word.replace(f"<{name}>", str(value))
            if PLACEHOLDER.search(word):
                raise ValueError(f"no substitution for {PLACEHOLDER.search(word)[0]} in {word!r}")
            words.append(word)
        return words

    def overrides(self, command=None, subs=None) -> list[str]:
        """The Hydra overrides of ``python train.py ...`` / ``python evaluate.py ...``, for an
        in-process run: ``compose_cfg([*readme.overrides(), *tiny], tmp_path)``."""
        words = self.words(command, subs)
        if words[:1] != ["python"] or words[1:2] not in ([app] for app in HYDRA_APPS):
            raise ValueError(f"not a train.py / evaluate.py command: {' '.join(words)}")
        return words[2:]

    def run(
        self, tmp_path: Path, command=None, extra=(), subs=None, timeout=300, env=None, cwd=None
    ):
        """The command as a subprocess in the repository root, ``extra`` appended; ``python`` is
        this interpreter, and train.py / evaluate.py runs go under ``tmp_path``; ``cwd`` (default:
        the repository root) for commands that name paths relative to it."""
        words = self.words(command, subs)
        if words[0] == "python":
            words[0] = sys.executable
        if len(words) > 1 and words[1] in HYDRA_APPS:
            extra = [*extra, f"paths.log_dir={tmp_path}"]
        full_env = cli_env(env)
        return subprocess.run(
            [*words, *extra], cwd=cwd or ROOT, env=full_env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    def unrun(self) -> list[str]:
        return [c for c in self.claimed if c not in self.ran]
