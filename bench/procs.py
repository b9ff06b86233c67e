"""Process helpers: memory of a process read from /proc (MB = 10^6 bytes), its children, free ports, clean stops.

Why /proc and not psutil: one dependency less, and the figures are the kernel's
own: VmHWM is the peak resident set (what an instance's memory limit is
compared against), VmRSS the current one, Pss the fair share of pages shared
between a server's master and worker processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from local.emulators import proc_stats


def memory_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = round(int(value.split()[0]) * 1024 / 1e6, 1)
    return out


def pss_mb(pid: int) -> float | None:
    """Proportional set size (shared pages split between their users), or None where the kernel hides it."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return round(int(line.split()[1]) * 1024 / 1e6, 1)
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (scans /proc: /proc/PID/task/PID/children is not always compiled in)."""
    return sorted(child for child, _, parent, _ in proc_stats() if parent == pid)


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children(current))
    return out


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it forked (its group only)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)
