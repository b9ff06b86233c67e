"""Schemathesis against ``docs/openapi.yaml``: the document and the code agree, and no generated request is a 5xx.

Why in the suite (CI runs it): the contract drifted once already (``additionalProperties: false`` answered 200,
methods declared that answered 405). Here every operation gets a bounded number of generated requests, valid and
invalid, through the same WSGI app Cloud Functions runs; each answer must be a documented status with a body of its
schema, schema-valid requests must not be refused for their shape and schema-invalid ones must be.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from functions_framework import create_app
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from shared.config import PROJECT_ROOT, get_settings

EXAMPLES = 40  # per operation; bounded so the suite stays fast on 2 cores

# A schema-invalid request is refused with a 4xx the document lists; 413 is ours for "too long / too many"
# (a review over maxLength, a batch over maxItems), 408 for a body that never arrives.
CONFIG = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
    "expected-statuses": ["400", "401", "405", "408", "413"]}}})
schema = schemathesis.openapi.from_path(str(PROJECT_ROOT / "docs" / "openapi.yaml"), config=CONFIG)
APP = create_app(target="classify_http", source=str(PROJECT_ROOT / "main.py"))


@pytest.fixture(autouse=True)
def default_settings(monkeypatch: pytest.MonkeyPatch) -> Any:
    for key in ("API_KEY", "MAX_BATCH", "MAX_REVIEW_CHARS", "MAX_BODY_BYTES", "MODEL_DIR", "CASCADE_MODEL_DIR"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_keeps_its_contract(case: Any) -> None:
    case.call_and_validate(app=APP)
