"""Every `harness ...` command shown in README.md and docs/*.md exists: its command path answers
`--help`, and every `--option` it uses is one that command takes. Commands are discovered from the
docs (code blocks and inline code), so a page that gains a command is checked without editing this
test. Intra-doc links must point at files (and headings) that exist."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from harness.cli import app

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
#: The board's empty-page hints name the command that fills a page: those must be valid too.
HINTS = sorted((REPO / "dashboards").rglob("*.py"))
FENCE = re.compile(r"^```(\w*)\s*$")
INLINE = re.compile(r"`(harness [^`]+)`")
SEPARATORS = {"&&", "||", "|", ";", "$", "then", "do"}


@dataclass(frozen=True)
class Shown:
    page: str
    line: int
    words: tuple[str, ...]  # after "harness"

    def __str__(self) -> str:
        return f"{self.page}:{self.line}: harness {' '.join(self.words)}"


def _split(text: str) -> list[str]:
    text = text.split(" #")[0]
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def _invocations(words: list[str]) -> list[tuple[str, ...]]:
    """The argument lists of every `harness` invocation in one shell line."""
    found = []
    for i, word in enumerate(words):
        before = words[i - 1] if i else ""
        if word == "harness" and (i == 0 or before in SEPARATORS or "=" in before or before.endswith(("(", "`"))):
            rest = []
            for w in words[i + 1 :]:
                if w in SEPARATORS or w.startswith((">", "2>", "<")):
                    break
                rest.append(w)
            found.append(tuple(rest))
    return found


def shown_commands() -> list[Shown]:
    shown: list[Shown] = []
    for page in [*PAGES, *HINTS]:
        rel = str(page.relative_to(REPO))
        in_code, lang, pending, start = False, "", "", 0
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            fence = FENCE.match(line.strip()) if page.suffix == ".md" else None
            if fence:
                in_code, lang = (not in_code), fence.group(1)
                continue
            if in_code and lang in ("", "bash", "sh", "shell", "console"):
                stripped = line.strip()
                if not pending:
                    start = number
                if stripped.endswith("\\"):
                    pending += stripped[:-1] + " "
                    continue
                full, pending = pending + stripped, ""
                shown.extend(Shown(rel, start, w) for w in _invocations(_split(full)))
            elif not in_code:
                for match in INLINE.finditer(line):
                    shown.extend(Shown(rel, number, w) for w in _invocations(_split(match.group(1))))
    return [s for s in shown if s.words and s.words[0] not in ("...", "…")]


def command_path(words: tuple[str, ...]) -> tuple[list[str], Any]:
    """The longest prefix of `words` naming a (sub)command, and that command (typer's own click)."""
    command: Any = typer.main.get_command(app)
    path: list[str] = []
    for word in words:
        if word in getattr(command, "commands", {}):
            command = command.commands[word]
            path.append(word)
        else:
            break
    return path, command


SHOWN = shown_commands()


def test_the_docs_show_commands() -> None:
    """The discovery itself works: the README's tour alone shows several commands."""
    assert sum(s.page == "README.md" for s in SHOWN) >= 5
    assert any(s.words[:2] == ("monitor", "alarms") for s in SHOWN)
    assert {s.page for s in SHOWN if s.page.startswith("dashboards/views/")} >= {"dashboards/views/drift.py"}


@pytest.mark.parametrize("shown", SHOWN, ids=str)
def test_every_command_in_the_docs_parses(shown: Shown) -> None:
    path, command = command_path(shown.words)
    assert path or shown.words[0].startswith("-"), f"{shown}: '{shown.words[0]}' is not a harness command"
    if hasattr(command, "commands") and len(shown.words) > len(path):
        nxt = shown.words[len(path)]
        assert nxt.startswith("-"), f"{shown}: '{nxt}' is not a subcommand of harness {' '.join(path)}"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, f"{shown}: --help failed: {result.output}"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in shown.words[len(path) :]:
        word = word.strip("[]")  # optional parts are shown as [--option VALUE]
        if word.startswith("--"):
            option = word.split("=", 1)[0]
            assert option in known, f"{shown}: harness {' '.join(path)} has no option {option}"


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", title)))
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_intra_doc_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target} (no file {dest.relative_to(REPO) if dest.is_relative_to(REPO) else dest})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    assert not broken, f"{page.relative_to(REPO)}: broken links: {broken}"
