"""What every record derives from its text: validation steps and cited file paths."""

from __future__ import annotations

import posixpath
import re

_BULLET = r"(?:[-*+\u2022]\s+|\d+[.)]\s+|\[[ xX]\]\s+)*"
_STEP = re.compile(rf"^\s*{_BULLET}((?:verify|check|assert|ensure|confirm)\b.*)$", re.IGNORECASE)

# Extensions a path in an agent log plausibly ends with. A token with a slash and any short
# alphanumeric extension counts too; a bare "x.y" needs a known extension, so version numbers,
# abbreviations ("e.g.") and floats are not mistaken for paths.
_KNOWN_EXT = frozenset(
    "py pyi js jsx ts tsx mjs cjs go rs java kt rb php c h cc cpp hpp cs swift scala sh bash "
    "sql md rst txt toml yaml yml json jsonl ini cfg conf env lock html css scss vue proto "
    "tf gradle xml csv ipynb dockerfile mk".split()
)
_PATH = re.compile(r"(?:\.{1,2}/)?(?:[\w.-]+/)*[\w-][\w.-]*\.([A-Za-z][A-Za-z0-9]{0,9})(?![\w/-])")
_DOT_LETTER = re.compile(r"\.[A-Za-z]")  # every path has one; most prose words do not
_RUN = re.compile(r"[\w./-]+")
_STEP_VERBS = ("verify", "check", "assert", "ensure", "confirm")


def extract_validation_steps(text: str) -> list[str]:
    """Lines starting (after an optional bullet or number) with verify/check/assert/ensure/confirm.

    >>> extract_validation_steps("do it\\n- Verify the API returns 200\\n2. check logs")
    ['Verify the API returns 200', 'check logs']
    """
    steps: list[str] = []
    lowered = text.lower()
    if not any(verb in lowered for verb in _STEP_VERBS):
        return steps
    for line in text.splitlines():
        folded = line.lower()
        if not any(verb in folded for verb in _STEP_VERBS):
            continue
        match = _STEP.match(line)
        if match:
            steps.append(match.group(1).strip())
    return steps


def normalise_path(path: str) -> str:
    """One spelling per relative path: no ``./``, no ``a/./b``, no ``a//b``, ``a/../b`` folded.

    A ``..`` that climbs above the start stays (``../x.py``): the path points outside the
    folder it is relative to, and the repository checks refuse it.

    >>> [normalise_path(p) for p in ("./hello.sh", "a/./b//c.py", "a/../../x.py")]
    ['hello.sh', 'a/b/c.py', '../x.py']
    """
    folded = posixpath.normpath(path)
    return folded[1:] if folded.startswith("//") else folded  # normpath keeps exactly "//"


def extract_file_paths(text: str) -> list[str]:
    """Relative, path-like tokens with an extension, in order of first appearance, normalised.

    ``./hello.sh`` and ``hello.sh`` are one path (see :func:`normalise_path`).

    >>> extract_file_paths("edit src/app/main.py and README.md, not v1.2 or e.g.")
    ['src/app/main.py', 'README.md']
    """
    found: dict[str, None] = {}
    # str.split and `in` run in C; only the few words holding a dot reach the regexes.
    for word in text.split():
        if "." not in word or not _DOT_LETTER.search(word):
            continue
        for run in _RUN.finditer(word):
            start = run.start()
            if start > 0 and word[start - 1] in ":@":
                continue  # a URL ("https://…") or an address, not a path
            match = _PATH.match(run.group(0))
            if match is None:
                continue
            token, ext = match.group(0), match.group(1)
            if token.startswith("/") or ("/" not in token and ext.lower() not in _KNOWN_EXT):
                continue
            found.setdefault(normalise_path(token), None)
    return list(found)


def title_of(instruction: str, limit: int = 120) -> str:
    """A one-line title: the instruction's first non-empty line, cut at ``limit`` characters."""
    for line in instruction.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"
    return ""
