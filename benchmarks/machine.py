"""The line every benchmark report opens with: which machine produced these numbers."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def describe() -> str:
    """``N cores (cpu model), M GiB RAM, Linux <release>``, from /proc where it exists."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        total = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        mem = f", {int(total) / 1024 / 1024:.0f} GiB RAM"
    return f"{os.cpu_count()} cores ({cpu}){mem}, {platform.system()} {platform.release()}"
