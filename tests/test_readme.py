"""The README is a walkthrough that runs as written.

Its ```bash/```sh and ```python blocks run in README order in ONE shell, as a user types them
into one terminal, in a fresh folder holding what a clean clone holds (``git ls-files``) plus a
link to this checkout's ``.venv`` (the README activates it itself). A ```python block whose
first line is ``# NAME.py: ...`` is a file the user saves (written, not run); any other
```python block is run with the shell's ``python``. A block whose info string says ``output``
(```json output, ```text output) shows what the runnable block before it prints: its quoted
strings and its lines, numbers masked, must be in what the run printed. A block preceded by a
``*Not run here*: REASON`` line is skipped, visibly, with its reason.

TF Serving's ports 8500/8501 in the blocks become two free ports, so the walkthrough never meets
another server of this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUNNABLE = {"bash": "shell", "sh": "shell", "python": "python"}
SKIP_MARKER = re.compile(r"^\s*\*Not run here\*:\s*(\S.*)$")
FILE_BLOCK = re.compile(r"^# ([\w.-]+\.py): ")
BLOCK_TIMEOUT = 300.0  # seconds for one block (an export of the HF or TF-Hub models included)
MAX_SKIPPED = 15  # 13 need Docker, a cluster or Google Cloud; the test suite; an install

@dataclass(frozen=True)
class Block:
    number: int  # 1-based, in README order
    line: int  # line of the opening fence
    lang: str
    info: str  # the rest of the info string ("output", ...)
    text: str
    skip_reason: str | None

    @property
    def kind(self) -> str:
        if self.lang in RUNNABLE:
            return RUNNABLE[self.lang]
        return "output" if "output" in self.info.split() else "shown"

    @property
    def first_line(self) -> str:
        return self.text.strip().splitlines()[0] if self.text.strip() else ""


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block of ``text``, dedented by its fence's indentation."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\w*)\s*(.*)$", lines[i])
        if not fence:
            i += 1
            continue
        indent, lang, info = len(fence.group(1)), fence.group(2), fence.group(3)
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            j += 1
        prose = [p for p in lines[:i] if p.strip()]
        marker = SKIP_MARKER.match(prose[-1]) if prose else None
        blocks.append(Block(len(blocks) + 1, i + 1, lang, info, "\n".join(body) + "\n",
                            marker.group(1).strip() if marker else None))
        i = j + 1
    return blocks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Measurements vary between runs; ids, versions and counts of a few do not. Masked: decimals,
# numbers with thousands separators or an exponent, and integers of 3 digits or more.
MEASURED = re.compile(r"-?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+(?:[eE][-+]?\d+)?"
                      r"|\d+[eE][-+]?\d+|\d{3,})")


def _normal(text: str) -> str:
    """Measurements masked, box drawing and spacing dropped: what must match between runs."""
    text = re.sub(r"[\u2500-\u257f]", " ", text)  # box drawing: tables' widths vary
    return " ".join(MEASURED.sub("#", text).split())


def check_shown_output(shown: Block, produced: str) -> list[str]:
    """What ``shown`` shows that ``produced`` lacks (empty: it matches, measurements aside).
    JSON: every quoted string exactly (names, labels, messages with their ids and versions);
    other text: every line, measurements masked."""
    missing: list[str] = []
    if shown.lang == "json":
        have = set(re.findall(r'"((?:[^"\\]|\\.)*)"', produced))
        return [json.loads(f'"{s}"') for s in re.findall(r'"((?:[^"\\]|\\.)*)"', shown.text)
                if s not in have]
    normal = _normal(produced)
    for line in shown.text.splitlines():
        if _normal(line) and _normal(line) not in normal:
            missing.append(line)
    return missing


def _clean_copy(dest: Path) -> None:
    """What a clean clone holds (tracked files, and new ones not ignored), mtimes kept so that
    scripts/install finds the venv up to date; the venv itself is this checkout's."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, check=True, capture_output=True).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if not src.is_file():
            continue  # deleted in the work tree
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    _venv_link(ROOT / ".venv", dest / ".venv")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)  # a clone is a repository


def _venv_link(venv: Path, dest: Path) -> None:
    """``dest`` stands for ``venv``: links to its parts, and an ``activate`` that activates
    ``venv`` itself (a venv copied from elsewhere keeps the old path in its own)."""
    dest.mkdir()
    for part in venv.iterdir():
        if part.name != "bin":
            (dest / part.name).symlink_to(part)
    (dest / "bin").mkdir()
    for part in (venv / "bin").iterdir():
        if part.name == "activate":
            text = re.sub(r'(?m)^(\s*)VIRTUAL_ENV=.*$', rf'\1VIRTUAL_ENV="{venv}"',
                          part.read_text())
            (dest / "bin" / "activate").write_text(text)
        else:
            (dest / "bin" / part.name).symlink_to(part)


class Terminal:
    """One bash that every shell block is typed into, as a user's terminal."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.meta = cwd.parent / "readme-run"  # the test's own files, outside the clone
        self.meta.mkdir()
        self.proc = subprocess.Popen(["bash", "--norc", "--noprofile"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=cwd, env=env, text=True, start_new_session=True)

    def run(self, number: int, script: Path, timeout: float = BLOCK_TIMEOUT
            ) -> tuple[int, str]:
        """Source ``script`` in the terminal; its first failing command ends it (as ``set -e``
        would, without closing the terminal)."""
        out, rc = self.meta / f"{number}.out", self.meta / f"{number}.rc"
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"trap 'return $?' ERR\nset -o pipefail\n"
                              f"source {script} > {out} 2>&1\necho $? > {rc}.tmp\n"
                              f"trap - ERR\nmv {rc}.tmp {rc}\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while not rc.exists():
            if self.proc.poll() is not None:  # the block ended the shell (exit)
                return self.proc.returncode or 1, out.read_text() if out.exists() else ""
            if time.monotonic() > deadline:
                return 124, (out.read_text() if out.exists() else "") + "\n[timed out]"
            time.sleep(0.2)
        return int(rc.read_text()), out.read_text()

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the shell and the servers it started
        except ProcessLookupError:
            return
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(15)


def test_shown_output_check_masks_measurements_not_ids_or_versions() -> None:
    table = Block(1, 1, "text", "output", "│ rows │ 2,004 │\n│ time │ 0.4 s │ 5,010 rows/s │\n"
                  "│ 3  │ spam │ since 1 │\n", None)
    assert check_shown_output(table, "┃ rows ┃ 200,004 ┃\n┃ time ┃ 12.25 s ┃ 980 rows/s ┃\n"
                              "│ 3 │ spam │ since 1 │") == []
    assert check_shown_output(table, "│ rows │ 2,004 │ time │ 0.4 s │ 5,010 rows/s │\n"
                              "│ 2 │ spam │ since 1 │") == ["│ 3  │ spam │ since 1 │"]
    reply = Block(2, 1, "json", "output",
                  '{"error": "task 3 (\'spam\') was removed in version 4", "top_score": 1.0}',
                  None)
    assert check_shown_output(reply, '{"error": "task 3 (\'spam\') was removed in version 4",'
                              ' "top_score": 0.25}') == []
    assert check_shown_output(reply, '{"error": "task 2 (\'spam\') was removed in version 3",'
                              ' "top_score": 1.0}') == [
        "task 3 ('spam') was removed in version 4"]


def test_readme_blocks_are_well_formed() -> None:
    """Cheap checks of the README's blocks, apart from running them."""
    blocks = readme_blocks(README.read_text())
    skipped = [b for b in blocks if b.skip_reason]
    assert 0 < len(skipped) <= MAX_SKIPPED, [(b.line, b.skip_reason) for b in skipped]
    for b in skipped:
        assert b.kind == "shell" and len(b.skip_reason or "") > 10, (b.line, b.skip_reason)
    runnable = [b for b in blocks if b.kind in ("shell", "python") and not b.skip_reason]
    assert len(runnable) >= 20
    for b in blocks:
        if b.kind == "output":
            before = [p for p in blocks[:b.number - 1] if p.kind in ("shell", "python")]
            assert before and not before[-1].skip_reason, f"output block at line {b.line}"


def test_readme_runs_as_written(tmp_path: Path) -> None:
    folder = tmp_path / "clone"
    _clean_copy(folder)
    grpc, rest = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != venv_bin)
    env.update(COLUMNS="160", HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    terminal = Terminal(folder, env)
    blocks = readme_blocks(README.read_text())
    failures: list[str] = []
    produced = ""
    try:
        for block in blocks:
            if block.skip_reason or block.kind == "shown":
                continue
            if block.kind == "output":
                missing = check_shown_output(block, produced)
                if missing:
                    failures.append(f"README line {block.line}: shown output not produced: "
                                    f"{missing}\n--- produced:\n{produced[-3000:]}")
                continue
            text = block.text.replace("8500", str(grpc)).replace("8501", str(rest))
            file_name = FILE_BLOCK.match(block.first_line)
            if block.kind == "python" and file_name:
                (folder / file_name.group(1)).write_text(text)
                continue
            script = terminal.meta / f"{block.number}.sh"
            if block.kind == "python":
                (terminal.meta / f"{block.number}.py").write_text(text)
                script.write_text(f"python {terminal.meta / f'{block.number}.py'}\n")
            else:
                script.write_text(text)
            started = time.monotonic()
            rc, produced = terminal.run(block.number, script)
            seconds = time.monotonic() - started
            print(f"README block {block.number} (line {block.line}, {block.kind}): rc {rc}, "
                  f"{seconds:.1f} s: {block.first_line[:70]}", flush=True)
            if rc != 0:
                message = (f"README line {block.line} ({block.kind} block) failed ({rc}):\n"
                           f"{block.text}\n--- output:\n{produced[-4000:]}")
                failures.append(message)
                if terminal.proc.poll() is not None:
                    break  # the terminal is gone: later blocks cannot run
    finally:
        terminal.close()
    assert not failures, "\n\n".join(failures)
    # The walkthrough leaves nothing that breaks the test command: every file it wrote is
    # git-ignored.
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "--stdin", "-v", "-n"], cwd=ROOT, text=True,
        input="\n".join(p.name + ("/" if p.is_dir() else "") for p in sorted(folder.iterdir())
                        if p.name != ".git"),
        capture_output=True).stdout
    tracked = set(subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.split())
    top = {t.split("/")[0] for t in tracked}
    not_ignored = [line.split("\t")[-1] for line in ignored.splitlines()
                   if line.startswith("::") and line.split("\t")[-1].rstrip("/") not in top]
    assert not not_ignored, f"the walkthrough wrote files .gitignore does not cover: {not_ignored}"
    # ruff (scripts/lint) still passes on the folder the walkthrough wrote into
    lint = subprocess.run([str(ROOT / ".venv" / "bin" / "ruff"), "check", "."], cwd=folder,
                          capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout[-3000:]
