"""Configuration: every environment variable the product reads, read in this one place.

Why one place: operators, Terraform and the local stack must agree on names and
defaults. Resource names (topics, collections, retry settings) come from
``names.json`` beside this file, which Terraform and the local stack read too,
so a name is written once. Every default works locally with no variable set.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
NAMES_FILE = PACKAGE_DIR / "names.json"
# Chosen on our dev split by tools/cascade.py (bench/results/cascade.md): re-score below this top probability.
CASCADE_MIN_CONFIDENCE = 0.85


@lru_cache(maxsize=1)
def names() -> dict[str, Any]:
    """Resource names shared with Terraform and the local stack."""
    data: dict[str, Any] = json.loads(NAMES_FILE.read_text(encoding="utf-8"))
    return data


ARTIFACTS = {tier: PROJECT_ROOT / "model_artifacts" / name for tier, name in names()["model_artifacts"].items()}
DEFAULT_MODEL_DIR = ARTIFACTS["fast"]
ACCURATE_MODEL_DIR = ARTIFACTS["accurate"]


@dataclass(frozen=True)
class Settings:
    project_id: str
    firestore_database: str
    model_dir: Path
    cascade_model_dir: Path | None  # set: the accurate tier re-scores what the model in model_dir is unsure of
    cascade_min_confidence: float
    execution_provider: str
    intra_op_threads: int
    max_review_chars: int
    max_batch: int
    max_body_bytes: int
    body_read_timeout_seconds: float
    max_windows_per_request: int
    api_key: str | None
    reviews_collection: str
    followups_collection: str
    rejected_collection: str
    followup_topic: str
    followup_webhook_url: str | None
    followup_threshold: float
    followup_high_priority: float
    followup_unsure_min: float
    webhook_timeout_seconds: float
    followup_max_event_age_seconds: int
    followup_max_age_days: int
    log_level: str
    log_review_text: bool
    firestore_timeout_seconds: float


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 1) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{key}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, lo: float = 0.0, hi: float = 1.0) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{key}={value} must lie between {lo} and {hi}")
    return value


def _text(env: Mapping[str, str], key: str, default: str) -> str:
    return env.get(key, "").strip() or default


def _optional(env: Mapping[str, str], key: str) -> str | None:
    return env.get(key, "").strip() or None


def _folder(raw: str) -> Path:
    """A relative folder is the deployed source's (Terraform sets ``model_artifacts/<name>``), whatever the cwd."""
    path = Path(raw)
    return path if path.is_absolute() else PROJECT_ROOT / path


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{key}={raw!r} is not a boolean (use true or false)")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from an environment mapping (tests pass their own)."""
    env = os.environ if env is None else env
    n = names()
    provider = _text(env, "EXECUTION_PROVIDER", "cpu").lower()
    if provider not in {"cpu", "cuda"}:
        raise ConfigError(f"EXECUTION_PROVIDER={provider!r} must be 'cpu' or 'cuda'")
    settings = Settings(
        project_id=_text(env, "GOOGLE_CLOUD_PROJECT", "reviewsense-local"),
        firestore_database=_text(env, "FIRESTORE_DATABASE", "(default)"),
        model_dir=_folder(_text(env, "MODEL_DIR", str(DEFAULT_MODEL_DIR))),
        cascade_model_dir=_folder(cascade) if (cascade := _optional(env, "CASCADE_MODEL_DIR")) else None,
        cascade_min_confidence=_float(env, "CASCADE_MIN_CONFIDENCE", CASCADE_MIN_CONFIDENCE),
        execution_provider=provider,
        intra_op_threads=_int(env, "ORT_INTRA_OP_THREADS", os.cpu_count() or 1),
        max_review_chars=_int(env, "MAX_REVIEW_CHARS", 5000),
        max_batch=_int(env, "MAX_BATCH", 64),
        max_body_bytes=_int(env, "MAX_BODY_BYTES", 1_000_000),
        body_read_timeout_seconds=_float(env, "BODY_READ_TIMEOUT_SECONDS", 10.0, 0.1, 300.0),
        # the compute one HTTP request may ask for: 64 reviews of 4,800 characters are about 380 windows (44 s of
        # CPU); 128 windows are about 7 s on one vCPU with the fast model
        max_windows_per_request=_int(env, "MAX_WINDOWS_PER_REQUEST", 128),
        api_key=_optional(env, "API_KEY"),
        reviews_collection=_text(env, "REVIEWS_COLLECTION", n["reviews_collection"]),
        followups_collection=_text(env, "FOLLOWUPS_COLLECTION", n["followups_collection"]),
        rejected_collection=_text(env, "REJECTED_COLLECTION", n["rejected_collection"]),
        followup_topic=_text(env, "FOLLOWUP_TOPIC", n["followup_topic"]),
        followup_webhook_url=_optional(env, "FOLLOWUP_WEBHOOK_URL"),
        followup_threshold=_float(env, "FOLLOWUP_THRESHOLD", 0.80),
        followup_high_priority=_float(env, "FOLLOWUP_HIGH_PRIORITY", 0.95),
        followup_unsure_min=_float(env, "FOLLOWUP_UNSURE_MIN", 0.55),
        webhook_timeout_seconds=_float(env, "WEBHOOK_TIMEOUT_SECONDS", 5.0, 0.1, 60.0),
        # Eventarc retries a failed event for up to 24 h; past this age a failure is logged and acknowledged
        followup_max_event_age_seconds=_int(env, "FOLLOWUP_MAX_EVENT_AGE_SECONDS", 3600),
        followup_max_age_days=_int(env, "FOLLOWUP_MAX_AGE_DAYS", 7),
        log_level=_text(env, "LOG_LEVEL", "INFO").upper(),
        log_review_text=_bool(env, "LOG_REVIEW_TEXT", False),
        # Per Firestore call, retries included: a push must fail (5xx, retried) well before the ack deadline.
        firestore_timeout_seconds=_float(env, "FIRESTORE_TIMEOUT_SECONDS", 10.0, 0.5, 60.0),
    )
    if not settings.followup_unsure_min <= settings.followup_threshold <= settings.followup_high_priority:
        raise ConfigError("need FOLLOWUP_UNSURE_MIN <= FOLLOWUP_THRESHOLD <= FOLLOWUP_HIGH_PRIORITY")
    return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once (the environment of a function instance does not change)."""
    return load_settings()
