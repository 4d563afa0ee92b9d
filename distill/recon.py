"""recon: what streams a home holds, how clean they are, which fields they fill."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from distill.config import Config
from distill.home import Home
from distill.jsonio import iter_raw_lines
from distill.schemas import SkipReason
from distill.sources import evidence_from_line

_PROVENANCE_GAPS = {
    SkipReason.missing_id,
    SkipReason.missing_timestamp,
    SkipReason.invalid_timestamp,
}


@dataclass
class StreamRecon:
    stream: str
    path: str
    adapter: bool
    rows: int = 0
    bad_rows: Counter[str] = field(default_factory=Counter)
    field_hits: Counter[str] = field(default_factory=Counter)
    objects: int = 0

    @property
    def missing_provenance(self) -> int:
        return sum(self.bad_rows[reason.value] for reason in _PROVENANCE_GAPS)

    def to_dict(self) -> dict[str, Any]:
        rate = self.missing_provenance / self.rows if self.rows else 0.0
        coverage = {
            name: round(hits / self.objects, 4) if self.objects else 0.0
            for name, hits in sorted(self.field_hits.items())
        }
        return {
            "stream": self.stream,
            "path": self.path,
            "adapter": self.adapter,
            "rows": self.rows,
            "bad_rows": sum(self.bad_rows.values()),
            "bad_rows_by_reason": dict(sorted(self.bad_rows.items())),
            "missing_provenance_rate": round(rate, 4),
            "field_coverage": coverage,
        }


def recon(home: Home, config: Config) -> list[StreamRecon]:
    """Scan every stream file under ``data/_kb/`` once, streaming; writes nothing."""
    results = []
    limit = config.collect.max_line_bytes
    for name, path in home.stream_files().items():
        source = config.sources.get(name)
        info = StreamRecon(name, home.relative(path), adapter=source is not None)
        for raw in iter_raw_lines(path, limit):
            if raw.data is not None and not raw.data.strip():
                continue
            info.rows += 1
            _count_fields(info, raw.data)
            if source is None:
                continue
            outcome = evidence_from_line(
                source, raw, source_file=info.path, recorded_at="", max_line_bytes=limit
            )
            if outcome.skip is not None:
                info.bad_rows[outcome.skip.value] += 1
        results.append(info)
    return results


def _count_fields(info: StreamRecon, data: bytes | None) -> None:
    if data is None:
        return
    try:
        row = orjson.loads(data)
    except orjson.JSONDecodeError:
        return
    if isinstance(row, dict):
        info.objects += 1
        info.field_hits.update(key for key, value in row.items() if value not in (None, "", []))
