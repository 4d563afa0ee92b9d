"""distill.toml: collect limits and user-declared streams.

One precedence for every setting (``distill.settings``): flag > environment > file > default.
distill.toml holds only ``[collect]`` and ``[sources.<name>]``, which have no flag or variable.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from distill.errors import ConfigError, format_validation_error
from distill.jsonio import DEFAULT_MAX_LINE_BYTES
from distill.sources import BUILTIN_SOURCES, Source, SourceSpec
from distill.sources.formats import DEFAULT_MAX_UNIT_BYTES, FORMATS, format_defaults
from distill.sources.paths import PATH_HINT


class CollectSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_line_bytes: int = Field(default=DEFAULT_MAX_LINE_BYTES, ge=64)
    max_unit_bytes: int = Field(
        default=DEFAULT_MAX_UNIT_BYTES,
        ge=1024,
        description="largest document or folded group of lines read whole (64 MiB)",
    )


@dataclass(frozen=True)
class Config:
    collect: CollectSettings = field(default_factory=CollectSettings)
    sources: dict[str, Source] = field(default_factory=lambda: dict(BUILTIN_SOURCES))
    path: Path | None = None


def load_config(path: Path) -> Config:
    """Read distill.toml if it exists; built-in streams plus the user's `[sources.*]` tables."""
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from err
    _refuse_unread(path, raw)
    try:
        collect = CollectSettings.model_validate(raw.get("collect", {}))
    except ValidationError as err:
        raise ConfigError(f"{path} [collect]: {format_validation_error(err)}") from err
    sources = dict(BUILTIN_SOURCES)
    tables = raw.get("sources") or {}
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: [sources] must be a table of [sources.<name>] tables")
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ConfigError(
                f"{path}: sources.{name} must be a table, got {table!r}",
                hint=f"write it as [sources.{name}] with id_field, time_field, …",
            )
        if name in BUILTIN_SOURCES:
            raise ConfigError(
                f"{path}: [sources.{name}] redefines a built-in stream",
                hint="give your stream another name",
            )
        sources[name] = _user_source(path, name, table)
    return Config(collect=collect, sources=sources, path=path)


# Sections an older distill.toml may hold that nothing reads: where their settings live instead.
ELSEWHERE = {
    "export": "export choices are flags: --include-review, --include-partial, --repo-root",
    "index": "the index is set by --index-dir / $DISTILL_INDEX_URI and --embedder / "
    "$DISTILL_EMBEDDER",
    "replay": "replay settings live in models/models.toml ([local], [escalation], [replay] "
    "min_relevance) and the flags of `distill replay`",
}


def _refuse_unread(path: Path, raw: dict[str, object]) -> None:
    """Every section is read; one that is not would be silently ignored, so it is refused."""
    moved = sorted(set(raw) & set(ELSEWHERE))
    if moved:
        raise ConfigError(
            f"{path}: distill.toml has no [{moved[0]}] section",
            hint=f"remove it: {ELSEWHERE[moved[0]]}",
        )
    unknown = set(raw) - {"collect", "sources"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(unknown)}",
            hint="distill.toml holds [collect] and [sources.<name>] tables",
        )


SOURCE_KEYS = sorted({*SourceSpec.model_fields, "response_field"} - {"name"})


def _user_source(path: Path, name: str, table: dict[str, object]) -> Source:
    """A ``[sources.<name>]`` table over its format's defaults, with its format's rules."""
    fmt = table.get("format", "jsonl")
    if not isinstance(fmt, str) or fmt not in FORMATS:
        raise ConfigError(
            f"{path} [sources.{name}]: format {fmt!r} is not one of {sorted(FORMATS)}",
            hint='e.g. format = "claude_code"; docs/formats.md lists them',
        )
    fields = format_defaults(fmt)
    if "response_field" in table:  # the table's single field replaces the format's list
        fields.pop("response_fields", None)
    unknown = sorted(set(table) - set(SOURCE_KEYS))
    if unknown:
        raise ConfigError(
            f"{path} [sources.{name}]: unknown key(s) {unknown}",
            hint=f"the keys are {', '.join(SOURCE_KEYS)}; {PATH_HINT}",
        )
    try:
        spec = SourceSpec.model_validate({**fields, **table, "name": name})
    except ValidationError as err:
        message = f"{path} [sources.{name}]: {format_validation_error(err)}"
        raise ConfigError(message, hint=PATH_HINT if "field path" in message else None) from err
    return FORMATS[fmt].source_class(spec)
