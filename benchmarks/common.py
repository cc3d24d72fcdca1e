"""Shared helpers: machine description, process memory, timing statistics, tables."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".bench"
"""Generated corpora, ground truth and raw results (gitignored)."""

PACKAGES = (
    "safehold",
    "threatexchange",
    "faiss-cpu",
    "numpy",
    "numba",
    "llvmlite",
    "pdqhash",
    "pillow",
)


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def total_ram_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def package_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    try:
        from PIL import features

        out["libjpeg-turbo"] = str(features.version("libjpeg_turbo") or "no")
    except Exception:  # pragma: no cover - depends on the Pillow build
        out["libjpeg-turbo"] = "unknown"
    return out


def machine_info() -> dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count() or 1,
        "usable_cores": usable_cores(),
        "ram_gib": round(total_ram_bytes() / 2**30, 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": package_versions(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


# --------------------------------------------------------------------------- memory


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def rss_bytes() -> int:
    """Resident set size of this process now."""
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """Highest resident set size since start or since :func:`reset_peak_rss`."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (``echo 5 > /proc/self/clear_refs``)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the kernel (glibc)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --------------------------------------------------------------------------- other load

_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:  # pragma: no cover - not Linux
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = (fields + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / _HZ


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process (all its threads); 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(rest[11]) + int(rest[12])) / _HZ


class CpuWatch:
    """How many cores *other* processes kept busy while a block ran.

    ``pids``: the processes doing the measured work (default: this one). On a
    shared machine a value well above 0 means the block's numbers are depressed.
    Blocks shorter than ``min_wall`` seconds report ``None`` (too coarse to tell).
    """

    def __init__(self, pids: Sequence[int] | None = None, min_wall: float = 0.5) -> None:
        self.pids = list(pids) if pids else [os.getpid()]
        self.min_wall = min_wall
        self.other_cores: float | None = None
        self._t0 = self._busy0 = self._own0 = 0.0

    def _own(self) -> float:
        return sum(process_cpu_seconds(p) for p in self.pids)

    def __enter__(self) -> CpuWatch:
        self._t0 = time.monotonic()
        self._busy0 = machine_busy_seconds()
        self._own0 = self._own()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._t0
        if wall < self.min_wall:
            return
        other = (machine_busy_seconds() - self._busy0) - (self._own() - self._own0)
        self.other_cores = round(max(0.0, other / wall), 2)


def wait_for_idle(
    max_wait: float, log: Callable[[str], None] = print, threshold: float = 0.2
) -> float | None:
    """Wait (at most ``max_wait`` s) until other processes use < ``threshold`` cores.

    Returns the last measured other load (None if no wait was asked for).
    """
    if max_wait <= 0:
        return None
    deadline = time.monotonic() + max_wait
    waited = False
    while True:
        with CpuWatch(min_wall=0.0) as w:
            time.sleep(2.0)
        load = w.other_cores or 0.0
        if load < threshold:
            if waited:
                log(f"[wait] machine idle (other load {load:.2f} cores)")
            return load
        if time.monotonic() >= deadline:
            log(f"[wait] still busy after {max_wait:.0f} s (other load {load:.2f}); going on")
            return load
        if not waited:
            log(f"[wait] other processes use {load:.2f} cores; waiting up to {max_wait:.0f} s")
            waited = True
        time.sleep(5.0)


LOADED = 0.25
"""Other load (cores) above which a measurement is flagged in the tables."""


def fmt_load(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f} ⚠" if value >= LOADED else f"{value:.2f}"


# --------------------------------------------------------------------------- statistics


def percentile_ms(samples_ns: Sequence[int] | np.ndarray, q: float) -> float:
    if len(samples_ns) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64), q)) / 1e6


# --------------------------------------------------------------------------- formatting


def fmt_num(value: float | int | None, digits: int = 0) -> str:
    """Human-friendly number: thousands separators, '—' for missing values."""
    if value is None:
        return "—"
    if isinstance(value, float) and not np.isfinite(value):
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def fmt_rate(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_mib(value: int | float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 2**20:,.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.1f}×" if value >= 10 else f"{value:.2f}×"


_NUMERIC = re.compile(r"[-+]?[\d,]*\.?\d+(×|%)?")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; numeric-looking columns are right-aligned."""

    def numeric(col: int) -> bool:
        cells = [r[col] for r in rows if r[col] not in ("—", "")]
        return bool(cells) and all(_NUMERIC.fullmatch(c) for c in cells)

    align = ["---:" if numeric(i) else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)
