"""``make reliability`` at a small scale: the harness runs end to end and says clean.

Why in the suite: the harness is how the team proves delivery guarantees after a change; one that silently
broke would prove nothing. The full-scale figures live in RELIABILITY.md (``make reliability``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.emulator

ROOT = Path(__file__).resolve().parent.parent


def test_the_reliability_run_is_clean_at_a_small_scale(tmp_path: Path) -> None:
    out = tmp_path / "RELIABILITY.md"
    result = subprocess.run([sys.executable, "-m", "reliability.run", "--scale", "0.03", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = out.read_text()
    for section in ("## Pub/Sub", "## Follow-ups", "## HTTP: hostile requests", "## HTTP: load"):
        assert section in report
    assert "**NO**" not in report and "| restart |" in report and "| poison |" in report
