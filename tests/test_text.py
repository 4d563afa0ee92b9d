"""What every record derives from its text: validation steps and cited file paths."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from distill.text import _KNOWN_EXT as KNOWN_EXT
from distill.text import (
    extract_file_paths,
    extract_validation_steps,
    normalise_path,
    title_of,
)

VERBS = re.compile(r"(verify|check|assert|ensure|confirm)\b", re.IGNORECASE)


@pytest.mark.parametrize(
    ("line", "step"),
    [
        ("Verify the API returns 200", "Verify the API returns 200"),
        ("- verify the API returns 200", "verify the API returns 200"),
        ("* Check the logs", "Check the logs"),
        ("+ ASSERT the total is positive", "ASSERT the total is positive"),
        ("\u2022 Ensure the lock is released", "Ensure the lock is released"),
        ("1. Confirm the invoice is sent", "Confirm the invoice is sent"),
        ("12) check rounding", "check rounding"),
        ("   - [ ] Verify the webhook signature", "Verify the webhook signature"),
        ("- [x] eNsUrE idempotency", "eNsUrE idempotency"),
        ("    confirm: nothing else changed  ", "confirm: nothing else changed"),
        ("Check", "Check"),
    ],
)
def test_validation_step_lines(line: str, step: str) -> None:
    assert extract_validation_steps(f"Some context.\n{line}\nMore prose.") == [step]


@pytest.mark.parametrize(
    "line",
    [
        "Please verify the API returns 200",
        "We should check the logs",
        "Verifying the output took long",
        "Checklist: done",
        "Ensured everything",
        "Validate the input",
        "Test the endpoint",
        "- run the tests, then verify",
        "# Verify heading is not a bullet",
        "a. verify lettered lists are not numbers",
        "",
    ],
)
def test_lines_that_are_not_validation_steps(line: str) -> None:
    assert extract_validation_steps(line) == []


def test_validation_steps_keep_their_order() -> None:
    text = "Plan:\n1. check A\n2. do B\n3. Verify C\r\n- assert D\nensure E"
    assert extract_validation_steps(text) == ["check A", "Verify C", "assert D", "ensure E"]


@pytest.mark.parametrize(
    ("text", "paths"),
    [
        ("edit src/app/main.py and README.md", ["src/app/main.py", "README.md"]),
        ("see `pkg/server/handler.go` first", ["pkg/server/handler.go"]),
        ("(tests/test_api.py:42)", ["tests/test_api.py"]),
        ("the fix lives in lib/util.ts.", ["lib/util.ts"]),
        ('open "config/settings.yaml", then', ["config/settings.yaml"]),
        ("run ./scripts/deploy.sh now", ["scripts/deploy.sh"]),
        ("run ./hello.sh, then hello.sh again", ["hello.sh"]),  # one path, one spelling
        ("see src/./app//main.py and src/app/main.py", ["src/app/main.py"]),
        ("see src/lib/../app/main.py", ["src/app/main.py"]),
        ("compare ../shared/types.proto", ["../shared/types.proto"]),
        ("bump pyproject.toml and requirements.txt", ["pyproject.toml", "requirements.txt"]),
        ("the data/export.custom format", ["data/export.custom"]),  # slash: any extension
        ("a.py, b.py and a.py again", ["a.py", "b.py"]),
        ("e.g. src/x.py", ["src/x.py"]),
    ],
)
def test_relative_paths_are_found(text: str, paths: list[str]) -> None:
    assert extract_file_paths(text) == paths


@pytest.mark.parametrize(
    "text",
    [
        "see https://example.com/docs/page.html for details",
        "http://localhost:8000/api/v1/users.json",
        "edit /etc/nginx/nginx.conf",
        "the module /usr/lib/python3.11/os.py",
        "upgrade to v1.2 then v1.2.3",
        "version 2.0.1 is out",
        "use a helper, e.g. a decorator, i.e. a wrapper",
        "ratio is 0.75 or 3.14159",
        "mail ops@example.com",
        "pi=3.14, e=2.718.",
        "the example.com site",
        "Mr.Smith said so",
    ],
)
def test_things_that_are_not_paths(text: str) -> None:
    assert extract_file_paths(text) == []


# Plain unicode text, and text from an alphabet dense in path and bullet characters.
ARBITRARY_TEXT = st.text() | st.text(alphabet=st.sampled_from(list("ab/.-_:@~ \n\r\t1)py*+[]xV")))


@given(ARBITRARY_TEXT)
def test_extractors_never_raise_and_only_return_what_the_text_holds(text: str) -> None:
    paths = extract_file_paths(text)
    assert len(paths) == len(set(paths))
    for path in paths:
        assert path == normalise_path(path)
        assert all(part in text for part in path.split("/"))  # normalised, never invented
        assert not path.startswith("/")
        assert "://" not in path
    for step in extract_validation_steps(text):
        assert step in text
        assert step == step.strip()
        assert VERBS.match(step)


@pytest.mark.parametrize(
    ("path", "normalised"),
    [
        ("hello.sh", "hello.sh"),
        ("./hello.sh", "hello.sh"),
        ("././hello.sh", "hello.sh"),
        ("a/./b.py", "a/b.py"),
        ("a//b.py", "a/b.py"),
        (".//a/b.py", "a/b.py"),
        ("a/b/../c.py", "a/c.py"),
        ("../x.py", "../x.py"),  # climbs out: kept, so the repository checks refuse it
        ("./../x.py", "../x.py"),
        ("a/../../x.py", "../x.py"),
        ("/etc/x.conf", "/etc/x.conf"),
        ("//etc/x.conf", "/etc/x.conf"),
    ],
)
def test_normalise_path_gives_one_spelling(path: str, normalised: str) -> None:
    assert normalise_path(path) == normalised
    assert normalise_path(normalised) == normalised


@given(
    st.lists(st.from_regex(r"[a-z]{1,8}(/[a-z_]{1,8}){0,3}\.(py|md|json|ts)", fullmatch=True)),
    st.sampled_from([" ", "\n", ", ", " and "]),
)
def test_every_relative_path_in_prose_is_found(paths: list[str], sep: str) -> None:
    text = "Touch " + sep.join(paths) + "."
    assert extract_file_paths(text) == list(dict.fromkeys(paths))


@pytest.mark.parametrize(
    ("instruction", "title"),
    [
        ("\n\n  Fix the parser  \nmore", "Fix the parser"),
        ("", ""),
        ("x" * 200, "x" * 119 + "\u2026"),
    ],
)
def test_title_is_the_first_line_cut_to_the_limit(instruction: str, title: str) -> None:
    assert title_of(instruction) == title


# --- the fast extractors find exactly what the plain per-word / per-line loops found ---------

_PLAIN_STEP = re.compile(
    r"^\s*(?:[-*+\u2022]\s+|\d+[.)]\s+|\[[ xX]\]\s+)*((?:verify|check|assert|ensure|confirm)\b.*)$",
    re.IGNORECASE,
)
_PLAIN_PATH = re.compile(
    r"(?:\.{1,2}/)?(?:[\w.-]+/)*[\w-][\w.-]*\.([A-Za-z][A-Za-z0-9]{0,9})(?![\w/-])"
)
_PIECES = st.sampled_from(
    [
        "src/app/main.py", "./a.sh", "README.md", "v1.2", "e.g.", "x.Y", "https://h.io/a.py",
        "a@b.com", "..", ".", "end.", "(see lib/x.ts)", "Verify", "check", "- ensure", "1. Confirm",
        "K", "\u017f", "\u0130", "ß", " ", "  ", "\n", "\r\n", "\t", "\x1c", "\x85", "\xa0",
        "\u2028", "\u3000", "\u200b", "word", "dir/file.rs:12", "a/b/c.PY", "x.d", "path/.env",
        "a.py.a.md", "x" * 300 + "/y.py", "\nverıfy x", "\n- a\u017f\u017fert", "\nchec\u212a",
    ]
)  # fmt: skip


def _plain_paths(text: str) -> list[str]:
    """The per-word loop extract_file_paths ran before it went from dot hits to words."""
    found: dict[str, None] = {}
    for word in text.split():
        if "." not in word or not re.search(r"\.[A-Za-z]", word):
            continue
        for run in re.finditer(r"[\w./-]+", word):
            if run.start() > 0 and word[run.start() - 1] in ":@":
                continue
            match = _PLAIN_PATH.match(run.group(0))
            if match is None:
                continue
            token, ext = match.group(0), match.group(1)
            if token.startswith("/") or ("/" not in token and ext.lower() not in KNOWN_EXT):
                continue
            found.setdefault(normalise_path(token), None)
    return list(found)


def _plain_steps(text: str) -> list[str]:
    """The per-line loop extract_validation_steps ran before _STEP went first."""
    verbs = ("verify", "check", "assert", "ensure", "confirm")
    steps = []
    for line in text.splitlines():
        if any(verb in line.lower() for verb in verbs) and (match := _PLAIN_STEP.match(line)):
            steps.append(match.group(1).strip())
    return steps


@given(st.lists(st.one_of(_PIECES, st.text(max_size=8)), max_size=40).map("".join))
def test_fast_extractors_equal_the_plain_loops(text: str) -> None:
    """Words found from dot hits (any Unicode whitespace around them), cached per word, and
    step lines filtered by the pattern first: the same answers, in the same order."""
    assert extract_file_paths(text) == _plain_paths(text)
    assert extract_file_paths(text) == _plain_paths(text)  # again, from the word cache
    assert extract_validation_steps(text) == _plain_steps(text)


@pytest.mark.parametrize("space", [chr(c) for c in range(0x3001) if chr(c).isspace()])
def test_every_unicode_space_separates_words_as_str_split_does(space: str) -> None:
    text = f"see{space}src/a.py{space}and{space}x{space}README.md{space}e.g."
    assert extract_file_paths(text) == _plain_paths(text) == ["src/a.py", "README.md"]


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("verıfy it\ncheck", ["check"]),  # re folds "ı" to "i", str.lower does not
        ("- a\u017f\u017fert x\ncheck", ["check"]),  # likewise the long s
        ("chec\u212a it", ["chec\u212a it"]),  # the Kelvin sign lower-cases to "k"
    ],
)
def test_a_step_line_holds_a_verb_once_lower_cased(text: str, steps: list[str]) -> None:
    assert extract_validation_steps(text) == steps == _plain_steps(text)


_ASCII_PIECES = st.sampled_from(
    ["verify", "Check", "ASSERT", "ensure", "confirm", "checks", "x", " ", "\t", "\n", "\x1f",
     "\r", "\x0c", "-", "*", "+", "1.", "22)", "[x]", "[ ]", ":", "e.g.", "src/a.py"]
)  # fmt: skip


@given(st.lists(_ASCII_PIECES, max_size=40).map("".join))
def test_ascii_text_finds_the_steps_the_plain_loop_finds(text: str) -> None:
    """Long ASCII text breaking lines only at "\\n" is searched whole; any other text line by
    line. A last line of spaces makes every text long enough to be searched whole."""
    assert extract_validation_steps(text) == _plain_steps(text)
    padded = text + "\n" + " " * 512
    assert extract_validation_steps(padded) == _plain_steps(padded) == _plain_steps(text)
