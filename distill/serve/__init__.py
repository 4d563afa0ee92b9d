"""distill serve: a warm replay service and a grounded OpenAI-compatible endpoint."""

from distill.serve.app import create_app
from distill.serve.server import build_server
from distill.serve.settings import ServeSettings, check_settings, is_loopback
from distill.serve.state import GenerationQueue, ServeState, ServeStats

__all__ = [
    "GenerationQueue",
    "ServeSettings",
    "ServeState",
    "ServeStats",
    "build_server",
    "check_settings",
    "create_app",
    "is_loopback",
]
