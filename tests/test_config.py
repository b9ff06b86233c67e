"""Configuration is read in one place, with defaults that work locally and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import DEFAULT_MODEL_DIR, load_settings, names
from shared.errors import ConfigError


def test_defaults_work_with_an_empty_environment() -> None:
    settings = load_settings({})
    assert settings.model_dir == DEFAULT_MODEL_DIR
    assert settings.reviews_collection == names()["reviews_collection"] == "reviews"
    assert settings.followup_topic == names()["followup_topic"] == "review-followups"
    assert (settings.followup_unsure_min, settings.followup_threshold, settings.followup_high_priority) == (
        0.55, 0.80, 0.95)
    assert settings.max_batch == 64 and settings.max_review_chars == 5000
    assert settings.api_key is None and settings.execution_provider == "cpu"


def test_environment_overrides() -> None:
    settings = load_settings({"REVIEWS_COLLECTION": "r2", "FOLLOWUP_THRESHOLD": "0.9", "API_KEY": "k",
                              "ORT_INTRA_OP_THREADS": "1", "EXECUTION_PROVIDER": "CUDA"})
    assert (settings.reviews_collection, settings.followup_threshold, settings.api_key) == ("r2", 0.9, "k")
    assert settings.intra_op_threads == 1 and settings.execution_provider == "cuda"


@pytest.mark.parametrize(("env", "message"), [
    ({"MAX_BATCH": "many"}, "MAX_BATCH='many' is not a whole number"),
    ({"MAX_BATCH": "0"}, "MAX_BATCH=0 must be at least 1"),
    ({"FOLLOWUP_THRESHOLD": "1.5"}, "FOLLOWUP_THRESHOLD=1.5 must lie between"),
    ({"FOLLOWUP_THRESHOLD": "0.5"}, "FOLLOWUP_UNSURE_MIN <= FOLLOWUP_THRESHOLD"),
    ({"EXECUTION_PROVIDER": "tpu"}, "must be 'cpu' or 'cuda'"),
    ({"LOG_REVIEW_TEXT": "maybe"}, "not a boolean"),
])
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert message in str(caught.value)


def test_model_folders_resolve_against_the_deployed_source_and_the_cascade_is_opt_in() -> None:
    from shared.config import ACCURATE_MODEL_DIR, DEFAULT_MODEL_DIR, PROJECT_ROOT

    plain = load_settings({})
    assert plain.model_dir == DEFAULT_MODEL_DIR and plain.cascade_model_dir is None
    # Terraform sets paths relative to the source root; they must not depend on the process's cwd
    cascade = load_settings({"MODEL_DIR": "model_artifacts/review-sentiment-minilm",
                             "CASCADE_MODEL_DIR": "model_artifacts/review-sentiment-mpnet",
                             "CASCADE_MIN_CONFIDENCE": "0.7"})
    assert cascade.model_dir == DEFAULT_MODEL_DIR and cascade.cascade_model_dir == ACCURATE_MODEL_DIR
    assert cascade.cascade_min_confidence == 0.7
    assert load_settings({"MODEL_DIR": "/opt/m"}).model_dir == Path("/opt/m")
    assert load_settings({"MODEL_DIR": "m"}).model_dir == PROJECT_ROOT / "m"
    with pytest.raises(ConfigError):
        load_settings({"CASCADE_MIN_CONFIDENCE": "1.5"})
