"""A source stream described by data: the `[sources.<name>]` table of distill.toml.

Built-in streams whose rule is a verdict → category map use exactly this mechanism; the few
whose rule is not that simple subclass :class:`Source` (see ``builtin.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from distill.schemas import Category
from distill.sources.paths import check_path, get_path
from distill.text import extract_file_paths

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
FormatName = Literal["jsonl", "claude_code", "mini_swe_agent", "swe_agent", "openai_chat"]
WhereValue = str | int | float | bool | list[str | int | float | bool]
BOOLEAN_VERDICTS = {"true": Category.accepted, "false": Category.rejected}
"""The verdict map of a source with a verdicts side file and no map of its own."""


class SourceSpec(BaseModel):
    """How one stream's rows become evidence and how a row's verdict becomes a category.

    Every ``*_field`` is a field path (``"info.submission"``, see :mod:`distill.sources.paths`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    format: FormatName = "jsonl"
    path: str | None = Field(
        default=None,
        description="input files: a glob under the home; default data/_kb/<name>.jsonl",
    )
    verdicts: str | None = Field(
        default=None, description="glob of verdict side files, joined to rows by id"
    )
    verdict_id_field: str | None = Field(
        default=None, description="the id field of verdict rows; default: id_field"
    )
    where: dict[str, WhereValue] = Field(
        default_factory=dict, description="keep only rows whose paths hold these values"
    )
    group_by: str | None = Field(default=None, description="fold lines sharing this field")
    epoch_times: bool = Field(
        default=True, description="numbers in the time field are epoch seconds or milliseconds"
    )
    repo_field: str | None = Field(
        default=None,
        description="the row field naming the repository, for --repo-root folders of checkouts",
    )
    id_field: str
    time_field: str
    task_field: str | None = "task_id"
    instruction_field: str | None = None
    instruction_template: str | None = Field(
        default=None, description='used when the instruction field is empty, e.g. "Review {file}"'
    )
    response_fields: list[str] = Field(min_length=1)
    verdict_field: str | None = None
    verdict_map: dict[str, Category] = Field(default_factory=dict)
    unmapped_category: Category = Category.needs_human_review
    file_fields: list[str] = Field(default_factory=lambda: ["file", "files"])

    @model_validator(mode="before")
    @classmethod
    def _single_response_field(cls, data: Any) -> Any:
        # distill.toml users write `response_field = "x"`; code uses the list form.
        if isinstance(data, dict) and "response_field" in data:
            data = dict(data)
            single = data.pop("response_field")
            data.setdefault("response_fields", [single])
        if isinstance(data, dict) and data.get("verdicts") and not data.get("verdict_map"):
            data = {**data, "verdict_map": dict(BOOLEAN_VERDICTS)}
        return data

    @field_validator(
        "id_field",
        "time_field",
        "task_field",
        "instruction_field",
        "verdict_field",
        "verdict_id_field",
        "group_by",
        "repo_field",
    )
    @classmethod
    def _one_path(cls, value: str | None) -> str | None:
        return None if value is None else check_path(value)

    @field_validator("response_fields", "file_fields")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [check_path(path) for path in value]

    @field_validator("where")
    @classmethod
    def _where_paths(cls, value: dict[str, WhereValue]) -> dict[str, WhereValue]:
        for path in value:
            check_path(path)
        return value

    @field_validator("verdict_map")
    @classmethod
    def _fold_case(cls, value: dict[str, Category]) -> dict[str, Category]:
        return {key.strip().lower(): category for key, category in value.items()}

    @model_validator(mode="after")
    def _instruction_defined(self) -> SourceSpec:
        if not self.instruction_field and not self.instruction_template:
            raise ValueError("set instruction_field or instruction_template")
        return self

    @property
    def consumed_fields(self) -> set[str]:
        """Row fields the mapping reads: a dotted path consumes the field it starts from too."""
        paths = {self.id_field, self.time_field, *self.response_fields, *self.file_fields}
        paths.update(p for p in (self.task_field, self.instruction_field, self.verdict_field) if p)
        return paths | {path.split(".", 1)[0] for path in paths}


class Scorable(Protocol):
    """What a category rule reads: an EvidenceRecord, or a lighter view of one."""

    @property
    def task_id(self) -> str | None: ...

    @property
    def signals(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ScoringContext:
    """Cross-stream facts some rules need, gathered in a first pass over all evidence."""

    task_floor: Mapping[str, Category] = field(default_factory=dict)
    observer_accepted_tasks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    category: Category
    rule: str
    verdict_bearing: bool


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "unknown"


def text_of(value: Any) -> str:
    """Render a field as text: strings as-is, None as empty, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


_JSON_KINDS = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"))


def json_kind(value: Any) -> str:
    """What JSON type ``value`` came from, for messages: "a string", "an array", …"""
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return next((name for kind, name in _JSON_KINDS if isinstance(value, kind)), "a value")


def invalid_input(field_name: str, value: Any, expected: str) -> Verdict:
    """A rule input of the wrong type or range: needs_human_review, never a guess.

    Verdict-bearing, so a fact of the same task cannot rise above it.
    """
    shown = orjson.dumps(value, default=str).decode()
    if len(shown) > 60:
        shown = shown[:57] + "..."
    rule = f"invalid {field_name}={shown} ({json_kind(value)}): expected {expected}"
    return Verdict(Category.needs_human_review, rule, True)


class Source:
    """A stream adapter. Subclasses override only the parts their rule needs."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self._consumed: frozenset[str] | None = None

    @property
    def consumed(self) -> frozenset[str]:
        """``consumed_fields()``, computed once per source (it is read for every row)."""
        if self._consumed is None:
            self._consumed = frozenset(self.consumed_fields())
        return self._consumed

    @property
    def name(self) -> str:
        return self.spec.name

    def instruction(self, row: Mapping[str, Any]) -> str:
        spec = self.spec
        text = text_of(get_path(row, spec.instruction_field)) if spec.instruction_field else ""
        if not text.strip() and spec.instruction_template:
            text = spec.instruction_template.format_map(_Blank(row))
        return text

    def response(self, row: Mapping[str, Any]) -> str:
        parts = [text_of(get_path(row, name)).strip() for name in self.spec.response_fields]
        return "\n\n".join(part for part in parts if part)

    def signals(self, row: Mapping[str, Any]) -> dict[str, Any]:
        field_name = self.spec.verdict_field
        verdict = get_path(row, field_name) if field_name else None
        return {} if verdict is None else {"verdict": verdict}

    def text_file_paths(self, text: str) -> list[str]:
        """The file paths a record's instruction or response names (``file_paths``)."""
        return extract_file_paths(text)

    def consumed_fields(self) -> set[str]:
        """Fields turned into evidence fields; everything else goes to ``metadata``."""
        return self.spec.consumed_fields

    def score(self, record: Scorable, context: ScoringContext) -> Verdict:
        """The verdict's text, case-folded, through the verdict map.

        A verdict that is not a string and matches no key (a number, a boolean, an array…) is
        an input of the wrong type: needs_human_review, whatever ``unmapped_category`` says.
        """
        verdict = record.signals.get("verdict")
        if verdict is None:
            return Verdict(Category.needs_human_review, "no verdict", False)
        field_name = self.spec.verdict_field or "verdict"
        if isinstance(verdict, list | dict):
            return invalid_input(field_name, verdict, "a string")
        key = text_of(verdict).strip().lower()
        category = self.spec.verdict_map.get(key)
        if category is None:
            if not isinstance(verdict, str):
                return invalid_input(field_name, verdict, "a string")
            return Verdict(self.spec.unmapped_category, f"{field_name}={key} (unmapped)", True)
        return Verdict(category, f"{field_name}={key}", True)
