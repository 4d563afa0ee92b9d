"""What every record derives from its text: validation steps and cited file paths."""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterator

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
_NON_SPACE = re.compile(r"\S*")  # re's \s is str.isspace: the words of str.split
_RUN = re.compile(r"[\w./-]+")
_STEP_VERBS = ("verify", "check", "assert", "ensure", "confirm")
# In ASCII text without the rarer line breaks (str.splitlines also breaks at \r, \v, \f and
# \x1c-\x1e), a line is what lies between "\n"s: a step line after the first is then found by
# one search for "\n" (a literal, which re scans for fast) instead of a split and a match per line.
_WHOLE_TEXT_FROM = 512  # characters; measured: shorter texts split into lines faster
_ODD_BREAKS = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e")
_INLINE_SPACE = r"[^\S\n]"  # \s less the line break, in ASCII text
_INLINE_BULLET = _BULLET.replace(r"\s", _INLINE_SPACE)
_STEP_AFTER_BREAK = re.compile(
    rf"\n{_INLINE_SPACE}*{_INLINE_BULLET}((?:verify|check|assert|ensure|confirm)\b[^\n]*)",
    re.IGNORECASE,
)


def extract_validation_steps(text: str) -> list[str]:
    """Lines starting (after an optional bullet or number) with verify/check/assert/ensure/confirm.

    >>> extract_validation_steps("do it\\n- Verify the API returns 200\\n2. check logs")
    ['Verify the API returns 200', 'check logs']
    """
    if len(text) >= _WHOLE_TEXT_FROM and text.isascii() and not any(b in text for b in _ODD_BREAKS):
        return _ascii_steps(text)
    steps: list[str] = []
    # A step line matches _STEP *and* holds a verb once lower-cased (the two differ on the
    # few letters re folds but str.lower does not, e.g. "\u017f"); filter runs _STEP in C.
    for line in filter(_STEP.match, text.splitlines()):
        folded = line.lower()
        if any(verb in folded for verb in _STEP_VERBS):
            steps.append(_STEP.match(line).group(1).strip())  # type: ignore[union-attr]
    return steps


def _ascii_steps(text: str) -> list[str]:
    """:func:`extract_validation_steps` of ASCII text whose only line break is ``\\n`` (where
    re's case folding and str.lower agree: every line the patterns match holds a verb)."""
    end = text.find("\n")
    first = _STEP.match(text, 0, len(text) if end < 0 else end)
    steps = [] if first is None else [first.group(1).strip()]
    steps += [match.group(1).strip() for match in _STEP_AFTER_BREAK.finditer(text)]
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
    for word in _dotted_words(text):
        paths = _cached_word_paths(word) if len(word) <= _CACHED_WORD else _word_paths(word)
        for path in paths:
            found.setdefault(path, None)
    return list(found)


def _word_paths(word: str) -> tuple[str, ...]:
    """The normalised paths one word holds: a function of the word alone."""
    paths = []
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
        paths.append(normalise_path(token))
    return tuple(paths)


# The same paths recur across a log's records: short words' answers are kept (a bounded
# cache of short strings, so memory stays flat whatever the input).
_CACHED_WORD = 128
_cached_word_paths = functools.lru_cache(maxsize=1 << 13)(_word_paths)


def _dotted_words(text: str) -> Iterator[str]:
    """The words of ``text.split()`` holding a dot followed by a letter, in order.

    Every such word holds a hit of :data:`_DOT_LETTER`; most texts have few, so the words
    are found from the hits (the word's end by a forward scan, its start by the same scan
    over the reversed text) instead of by a Python loop over every word.
    """
    reversed_text: str | None = None
    size = len(text)
    word_end = 0
    for hit in _DOT_LETTER.finditer(text):
        start = hit.start()
        if start < word_end:
            continue  # a second hit in the word already yielded
        if reversed_text is None:
            reversed_text = text[::-1]
        word_start = size - _NON_SPACE.match(reversed_text, size - start).end()  # type: ignore[union-attr]
        word_end = _NON_SPACE.match(text, start).end()  # type: ignore[union-attr]
        yield text[word_start:word_end]


def title_of(instruction: str, limit: int = 120) -> str:
    """A one-line title: the instruction's first non-empty line, cut at ``limit`` characters."""
    for line in instruction.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "\u2026"
    return ""
