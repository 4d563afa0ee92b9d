"""The home folder: where every stage reads and writes (`--home` > `$DISTILL_HOME` > cwd,
resolved by ``distill.settings.resolve_home``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from distill.errors import ConfigError

SKIPS_FILE = "distillation_skips.jsonl"
EXPORT_FILES = {
    "rag": Path("rag/playbooks.jsonl"),
    "sft": Path("sft/instruction_response.jsonl"),
    "preference": Path("preference/chosen_rejected.jsonl"),
}
# Files under data/_kb/ that distill itself writes: never read back as source streams.
NOT_STREAMS = frozenset({SKIPS_FILE, "audit_baselines.jsonl"})


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def resolve(cls, folder: Path | str | None = None) -> Home:
        """The home at ``folder`` (``~`` expanded, made absolute), else the current directory."""
        root = Path(folder if folder is not None else Path.cwd()).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ConfigError(f"home {root} is a file, not a folder", hint="pass --home DIR")
        return cls(root)

    @property
    def kb_dir(self) -> Path:
        return self.root / "data" / "_kb"

    @property
    def evidence_dir(self) -> Path:
        return self.root / "data" / "evidence"

    @property
    def scored_dir(self) -> Path:
        return self.root / "data" / "scored-runs"

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    @property
    def quarantine_dir(self) -> Path:
        return self.exports_dir / "quarantine"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports" / "distillation"

    @property
    def index_dir(self) -> Path:
        return self.root / "index"

    @property
    def skips_path(self) -> Path:
        return self.kb_dir / SKIPS_FILE

    @property
    def config_path(self) -> Path:
        return self.root / "distill.toml"

    def export_path(self, export: str) -> Path:
        return self.exports_dir / EXPORT_FILES[export]

    def quarantine_path(self, export: str) -> Path:
        return self.quarantine_dir / f"{export}.jsonl"

    def relative(self, path: Path) -> str:
        """Path relative to the home, POSIX-style, so provenance is the same on every machine."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def stream_files(self) -> dict[str, Path]:
        """Source streams present under ``data/_kb/``, by name, in sorted order."""
        if not self.kb_dir.is_dir():
            return {}
        return {
            path.stem: path
            for path in sorted(self.kb_dir.glob("*.jsonl"))
            if path.name not in NOT_STREAMS and path.is_file()
        }

    def not_files(self) -> list[Path]:
        """``*.jsonl`` entries under ``data/_kb/`` that are not files (a folder, a dead link)."""
        if not self.kb_dir.is_dir():
            return []
        return [p for p in sorted(self.kb_dir.glob("*.jsonl")) if not p.is_file()]
