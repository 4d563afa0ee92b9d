"""Which files each source reads: its ``path`` glob, or ``data/_kb/<name>.jsonl``."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from distill.home import NOT_STREAMS, Home
from distill.sources.spec import Source

if TYPE_CHECKING:
    from distill.config import Config


@dataclass(frozen=True)
class SourceInput:
    """A source and the files it reads now (sorted by their path relative to the home)."""

    source: Source
    pattern: str
    files: list[Path]
    verdict_files: list[Path]

    @property
    def name(self) -> str:
        return self.source.name


def default_pattern(name: str) -> str:
    return f"data/_kb/{name}.jsonl"


def source_inputs(home: Home, config: Config) -> tuple[list[SourceInput], list[str]]:
    """Every source with the files it matches, by name; and warnings about what is not read.

    A source whose ``path`` (or ``verdicts``) matches nothing is a warning; so is a
    ``data/_kb/*.jsonl`` stream no source reads (today's "no adapter" warning).
    """
    inputs: list[SourceInput] = []
    warnings: list[str] = []
    claimed: set[Path] = set()
    for name in sorted(config.sources):
        spec = config.sources[name].spec
        pattern = spec.path or default_pattern(name)
        files = glob_files(home, pattern)
        if spec.path and not files:
            warnings.append(f"[sources.{name}] path {pattern!r} matches no file under the home")
        verdict_files = glob_files(home, spec.verdicts) if spec.verdicts else []
        if spec.verdicts and not verdict_files:
            warnings.append(f"[sources.{name}] verdicts {spec.verdicts!r} matches no file")
        claimed.update(files)
        inputs.append(SourceInput(config.sources[name], pattern, files, verdict_files))
    for path in home.stream_files().values():
        if path.resolve() in claimed:
            continue
        name, shown = path.stem, home.relative(path)
        if name in config.sources:
            elsewhere = config.sources[name].spec.path
            warnings.append(f"{shown}: not read ([sources.{name}] path = {elsewhere!r})")
        else:
            warnings.append(
                f"{shown}: no adapter for stream {name!r}, not collected "
                f"(declare [sources.{name}] in distill.toml)"
            )
    return inputs, warnings


def glob_files(home: Home, pattern: str) -> list[Path]:
    """Files matching ``pattern`` (``**`` spans folders; relative to the home unless absolute),
    never distill's own outputs, in sorted order of their path as provenance shows it."""
    expanded = os.path.expanduser(pattern)
    if os.path.isabs(expanded):
        found = [Path(p) for p in glob.glob(expanded, recursive=True)]
    else:
        found = [home.root / p for p in glob.glob(expanded, root_dir=home.root, recursive=True)]
    outputs = _outputs(home)
    files = {
        path.resolve()
        for path in found
        if path.is_file() and not _is_output(path.resolve(), outputs, home)
    }
    return sorted(files, key=home.relative)


def _outputs(home: Home) -> list[Path]:
    folders = [home.evidence_dir, home.scored_dir, home.exports_dir, home.reports_dir]
    return [folder.resolve() for folder in [*folders, home.index_dir]]


def _is_output(path: Path, outputs: list[Path], home: Home) -> bool:
    if path.parent == home.kb_dir.resolve() and path.name in NOT_STREAMS:
        return True
    return any(path.is_relative_to(folder) for folder in outputs)
