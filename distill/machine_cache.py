"""The per-machine cache folder: files derived once per machine and shared by every home.

``$XDG_CACHE_HOME/distill/`` (default ``~/.cache/distill/``). What lives there can always be
made again from what is installed (an exported ONNX model, for example), so deleting it is safe.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CACHE_DIR = "distill"  # under $XDG_CACHE_HOME (default ~/.cache)


def machine_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/distill`` (default ``~/.cache/distill``); not created here."""
    values = os.environ if env is None else env
    base = values.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / CACHE_DIR
