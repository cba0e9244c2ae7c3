"""The README's examples run as written, so they cannot rot.

Every fenced block of README.md is `bash` or `python`. The bash blocks' commands run one by one,
in the README's order, in a scratch working folder with private dataset caches, with the venv's
`bin` folder (this interpreter's) first on PATH so `offrl ...` runs as a user types it; the python
blocks run in that folder too, in one namespace, in order with the commands before them. A command
that is not an `offrl` or `python` command must be listed in NOT_RUN with the reason it is not
run here: a new example is either run by this test or named in this file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
RUNNABLE = ("offrl", "python")

# Commands (as `commands` normalises them) the test does not run, and why.
NOT_RUN = {
    "source .venv/bin/activate": "the test puts the venv's bin folder first on PATH instead",
    "make test": "the test suite this test is part of",
    "make test-slow": "the slow tests: far longer than the default suite",
    "make lint": "CI runs it (.ci/run)",
    "make format": "rewrites the working tree",
    "make bench": "about 95 min on 2 cores; CI runs make bench PROFILE=smoke",
    "make bench PROFILE=repro RESULTS=leaderboard/repro": "about 37 h on 2 cores",
    "make bench PROFILE=antmaze RESULTS=leaderboard/antmaze": "about 40 min on 2 cores",
    "make bench-peer PROFILE=repro RESULTS=leaderboard/repro": (
        "hours, and needs the offrl[peers] extra (d3rlpy, torch)"
    ),
    "offrl data make --all": "every embedded dataset at its standard size: 1M-4M steps each",
}


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    line: int
    """The README line of the opening fence."""


FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def readme_blocks(text: str) -> list[Block]:
    """Every fenced code block, in order."""
    return [
        Block(match.group(1).strip(), match.group(2), text.count("\n", 0, match.start()) + 1)
        for match in FENCE.finditer(text)
    ]


def commands(code: str) -> list[str]:
    """A bash block's commands: continued lines joined, comments dropped, spaces collapsed."""
    found = []
    for line in code.replace("\\\n", " ").splitlines():
        line = " ".join(re.sub(r"(^|\s)#.*$", "", line).split())
        if line:
            found.append(line)
    return found


def readme_commands() -> list[str]:
    return [
        command
        for block in readme_blocks(README.read_text())
        if block.language == "bash"
        for command in commands(block.code)
    ]


def test_blocks_are_bash_or_python():
    blocks = readme_blocks(README.read_text())
    assert blocks, "no code blocks found in README.md"
    others = [(b.line, b.language) for b in blocks if b.language not in ("bash", "python")]
    assert not others, f"README blocks (line, language) this test cannot run: {others}"


def test_every_command_is_runnable_or_listed():
    unchecked = [
        command
        for command in readme_commands()
        if command not in NOT_RUN and command.split()[0] not in RUNNABLE
    ]
    assert not unchecked, (
        f"README commands neither run by this test nor in its NOT_RUN list: {unchecked}"
    )


def test_not_run_list_names_only_readme_commands():
    stale = sorted(set(NOT_RUN) - set(readme_commands()))
    assert not stale, f"NOT_RUN lists commands the README no longer has: {stale}"


def test_commands_are_parsed_as_a_shell_reads_them():
    code = 'make bench   # a comment\n# a line\noffrl train --a 1 \\\n    --b "x y"\n\n'
    assert commands(code) == ["make bench", 'offrl train --a 1 --b "x y"']


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a page's headings (code blocks left out)."""
    text = FENCE.sub("", markdown)
    headings = re.findall(r"^#+\s+(.*?)\s*$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_links_of_readme_and_docs_resolve():
    """Every relative link of README.md and docs/*.md names a file that exists and, after `#`, one
    of its headings: a page moved or a section renamed fails here, not in a reader's browser."""
    broken = []
    for page in (README, *sorted((ROOT / "docs").glob("*.md"))):
        text = FENCE.sub("", page.read_text())
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.is_file() and anchor not in heading_anchors(linked.read_text()):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def run_command(command: str, folder: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = (done.stdout + done.stderr)[-4000:]
    assert done.returncode == 0, f"README command failed ({done.returncode}): {command}\n{output}"


def test_readme_examples_run(tmp_path, minari_dir, d4rl_dir, monkeypatch):
    """Every runnable command and every python block, in the README's order, in one folder.

    `minari_dir` and `d4rl_dir` give the examples empty dataset caches and a scratch HOME; the
    session's offrl cache (compiled programs) is shared with the rest of the suite."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for block in readme_blocks(README.read_text()):
        if block.language == "python":
            exec(compile(block.code, f"README.md:{block.line}", "exec"), namespace)
            ran += 1
            continue
        for command in commands(block.code):
            if command not in NOT_RUN:
                run_command(command, folder)
                ran += 1
    assert ran, "no README example ran"
    assert (folder / "hopper.policy").is_file()
    assert (folder / "runs" / "py-demo" / "records.jsonl").is_file()
