"""pydantic v2 models: the contract of every file distill writes."""

from distill.schemas.common import (
    Category,
    Message,
    Provenance,
    QuarantineReason,
    SkipReason,
    most_conservative,
)
from distill.schemas.evidence import EvidenceRecord, ScoredRun
from distill.schemas.exports import PairSide, PreferenceSample, RagSample, SftSample
from distill.schemas.ledger import ExportName, PairRef, QuarantineRecord, SkipRecord
from distill.schemas.receipts import (
    DatasetInfo,
    DriftFinding,
    DriftReport,
    FileDigest,
    RunSummary,
    StageCounts,
    StageReceipt,
    StageValidation,
)
from distill.schemas.replay import (
    Attempt,
    Bundle,
    BundlePiece,
    GateCheck,
    GateReport,
    ReplayRun,
    RetrievalHit,
    Usage,
    ValidationStep,
)

__all__ = [
    "Attempt",
    "Bundle",
    "BundlePiece",
    "GateCheck",
    "GateReport",
    "ReplayRun",
    "RetrievalHit",
    "Usage",
    "ValidationStep",
    "Category",
    "DatasetInfo",
    "DriftFinding",
    "DriftReport",
    "FileDigest",
    "RunSummary",
    "StageCounts",
    "StageReceipt",
    "StageValidation",
    "EvidenceRecord",
    "ExportName",
    "Message",
    "PairRef",
    "PairSide",
    "PreferenceSample",
    "Provenance",
    "QuarantineReason",
    "QuarantineRecord",
    "RagSample",
    "ScoredRun",
    "SftSample",
    "SkipReason",
    "SkipRecord",
    "most_conservative",
]
