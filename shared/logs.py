"""Structured JSON logs on stdout, the form Cloud Logging parses into severity and fields.

Why: one JSON object per line lets operators filter by severity, latency or
model version without regexes. Review text is personal data and stays out of
logs unless LOG_REVIEW_TEXT is set.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

_LEVELS = {"DEBUG": 10, "INFO": 20, "NOTICE": 25, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def log(severity: str, message: str, **fields: Any) -> None:
    """Write one structured entry; unknown severities are logged as DEFAULT."""
    from shared.config import get_settings

    try:
        threshold = _LEVELS.get(get_settings().log_level, 20)
    except Exception:  # a bad config must not silence the error that reports it
        threshold = 20
    if _LEVELS.get(severity, 20) < threshold:
        return
    entry = {"severity": severity, "message": message, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             **fields}
    stream = sys.stderr if _LEVELS.get(severity, 20) >= 40 else sys.stdout
    stream.write(json.dumps(entry, default=str, ensure_ascii=False) + "\n")
    stream.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
