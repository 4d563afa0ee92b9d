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
from distill.replay.run import ReplayOptions, replay

__all__ = [
    "HEDGING_PHRASES",
    "ChatModel",
    "Completion",
    "GatePolicy",
    "LlamaCppModel",
    "ModelError",
    "OpenAICompatibleClient",
    "ReplayOptions",
    "RetryPolicy",
    "build_bundle",
    "replay",
    "run_gate",
]
