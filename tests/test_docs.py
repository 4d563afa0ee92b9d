"""The README stays a front page and the docs/ pages stay linked: every relative link in them
reaches a file (and a heading) that exists, and nothing points readers at files they lack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
README_MAX_LINES = 300
# Files a user of this repository does not have; built from parts so this module names neither.
ABSENT_FILES = ("DESIGN" + ".md", "STYLE" + ".md")
SEARCHED = ("distill", "tests", "benchmarks", "docs", "README.md")

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`+[^`\n]*`+")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks: links and headings inside code are not markdown."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[str]:
    links: list[str] = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        links += LINK.findall(CODE_SPAN.sub("", line))
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def test_slug_matches_githubs_anchors() -> None:
    assert slug("Install (operators)") == "install-operators"
    assert slug("`claude_code` — Claude Code sessions") == "claude_code--claude-code-sessions"
    assert slug("models/models.toml") == "modelsmodelstoml"


def test_the_readme_is_a_front_page() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move detail to docs/"
    )
    head = "\n".join(lines[:30])
    assert "make demo" in head and "make test" in head, "the two commands come first"


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.relative_to(REPO).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken: list[str] = []
    for link in relative_links(page):
        target, _, anchor = link.partition("#")
        file = (page.parent / target).resolve() if target else page
        if not file.exists():
            broken.append(f"{link}: no file {file.relative_to(REPO)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_the_docs_index_lists_every_page() -> None:
    listed = {link.partition("#")[0] for link in relative_links(DOCS / "README.md")}
    pages_here = [page.name for page in DOCS.glob("*.md") if page.name != "README.md"]
    missing = [name for name in pages_here if name not in listed]
    assert not missing, f"docs/README.md does not link {missing}"


def test_nothing_cites_files_users_do_not_have() -> None:
    citing: list[str] = []
    for root in SEARCHED:
        base = REPO / root
        for path in [base] if base.is_file() else sorted(base.rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            citing += [
                f"{path.relative_to(REPO)} names {name}" for name in ABSENT_FILES if name in text
            ]
    assert not citing, "; ".join(citing) + ": point at docs/ instead"


def test_the_configuration_page_lists_every_environment_variable() -> None:
    from distill.settings import ENV_VARS

    page = (DOCS / "configuration.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `(DISTILL_[A-Z_]+)` \|", page, re.MULTILINE))
    assert rows == {var.name for var in ENV_VARS}, "docs/configuration.md's table is out of date"
