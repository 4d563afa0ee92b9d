"""The committed sample corpus is exactly what fixtures/sample/generate.py writes.

Its README promises that regenerating is a no-op: a change to the generator's code or to its
data files (fixtures/sample/spec/) that changes the corpus must come with the new output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "sample"


def _files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_regenerating_the_sample_reproduces_the_committed_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SAMPLE / "generate.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for folder in ("data", "repo"):
        fresh, committed = _files(tmp_path / folder), _files(SAMPLE / folder)
        assert sorted(fresh) == sorted(committed), folder
        changed = [name for name in fresh if fresh[name] != committed[name]]
        assert changed == [], f"regenerated {folder}/ differs from the committed one"
    assert (tmp_path / "tasks.jsonl").read_bytes() == (SAMPLE / "tasks.jsonl").read_bytes()
