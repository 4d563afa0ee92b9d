"""Replay: grounded answers from a local model, validated, escalated only when allowed, logged."""

from distill.replay.bundle import build_bundle
from distill.replay.clients import (
    ChatModel,
    Completion,
    ModelError,
    OpenAICompatibleClient,
    RetryPolicy,
)
from distill.replay.embedded import LlamaCppModel
from distill.replay.gate import HEDGING_PHRASES, GatePolicy, run_gate
from distill.replay.run import ReplayOptions, abstain_answer, replay
from distill.replay.semantic import SEMANTIC_CHECKS, GateEvidence, gate_answer

__all__ = [
    "HEDGING_PHRASES",
    "SEMANTIC_CHECKS",
    "ChatModel",
    "Completion",
    "GateEvidence",
    "GatePolicy",
    "LlamaCppModel",
    "ModelError",
    "OpenAICompatibleClient",
    "ReplayOptions",
    "RetryPolicy",
    "abstain_answer",
    "build_bundle",
    "gate_answer",
    "replay",
    "run_gate",
]
