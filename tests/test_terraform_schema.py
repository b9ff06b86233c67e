"""Offline `terraform validate` stand-in: every google resource, data source and
provider block in terraform/*.tf is checked against the google provider's real
schema (tests/provider_schema.py reads it from the cdktn-provider-google package).

Checked: the type exists; every argument and nested block exists (meta-arguments
allowed; `dynamic "x" { content {...} }` is checked as block x); literal values fit
the argument's type the way Terraform converts them ("5" is a fine number, "five"
is not; expressions "${...}" are not type-checked); required arguments and blocks
are set, also inside every nested block present; a block that may appear once does.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from tests.provider_schema import Body, ProviderSchema, assembly_path, load_schema
from tests.test_terraform import _norm as norm_hcl

hcl2 = pytest.importorskip("hcl2")

TF_DIR = Path(__file__).resolve().parents[1] / "terraform"

META = {
    "resource": {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"},
    "data": {"count", "for_each", "depends_on", "provider", "lifecycle"},
    "provider": {"alias", "version"},
}
LIFECYCLE = {"create_before_destroy", "prevent_destroy", "ignore_changes", "replace_triggered_by",
             "precondition", "postcondition"}
DYNAMIC = {"for_each", "iterator", "labels", "content"}


# --------------------------------------------------------------------------- #
# Loading: as in test_terraform.py (quotes stripped), but blocks keep their
# __is_block__ marker so `x { }` and `x = {...}` / `x = [...]` stay apart.
# --------------------------------------------------------------------------- #


def _norm(obj: Any) -> Any:
    return norm_hcl(obj, keep_block_markers=True)


def load_tf(directory: Path = TF_DIR) -> dict[str, dict[str, dict[str, Any]]]:
    """{"resource"|"data"|"provider": {type: {name: body}}} (a provider's name is its alias or "default"),
    and {"required_providers": {"terraform": {local name: requirement}}}."""
    tf: dict[str, dict[str, dict[str, Any]]] = {"resource": {}, "data": {}, "provider": {}, "required_providers": {}}
    for path in sorted(directory.glob("*.tf")):
        with path.open(encoding="utf-8") as fh:
            doc = _norm(hcl2.load(fh))
        for kind in ("resource", "data"):
            for entry in doc.get(kind, []):
                for rtype, by_name in entry.items():
                    for name, body in by_name.items():
                        tf[kind].setdefault(rtype, {})[name] = body
        for entry in doc.get("provider", []):
            for ptype, body in entry.items():
                tf["provider"].setdefault(ptype, {})[str(body.get("alias", "default"))] = body
        for entry in doc.get("terraform", []):
            for required in entry.get("required_providers", []):
                tf["required_providers"].setdefault("terraform", {}).update(required)
    return tf


TF = load_tf()


# --------------------------------------------------------------------------- #
# Checker
# --------------------------------------------------------------------------- #


def _is_expr(value: Any) -> bool:
    return isinstance(value, str) and ("${" in value or "%{" in value)


MARKS_BLOCKS = "__is_block__" in str(hcl2.loads("x {\n}\n"))  # python-hcl2 >= 7


def _blocks(value: Any) -> list[dict[str, Any]] | None:
    """The bodies of a block written `name { ... }` (one list entry each), else None (an attribute value)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return value if not MARKS_BLOCKS or all(v.get("__is_block__") for v in value) else None
    return None


def type_problem(expected: str, value: Any) -> str | None:
    """Why a value cannot be converted to the attribute type, or None."""
    if _is_expr(value) or value is None or expected == "any":
        return None
    for outer, want in (("list(", list), ("map(", dict)):
        if expected.startswith(outer):
            if not isinstance(value, want):
                return f"expects {expected}, got the literal {value!r}"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                problem = type_problem(expected[len(outer):-1], item)
                if problem:
                    return f"[{key!r}] {problem}"
            return None
    if isinstance(value, list | dict):
        return f"expects {expected}, got a {'list' if isinstance(value, list) else 'object'} literal"
    if expected == "number" and isinstance(value, str):
        try:
            float(value)
            return None
        except ValueError:
            return f"expects number, got the string {value!r}"
    if expected == "number" and isinstance(value, bool):
        return f"expects number, got the bool {value!r}"
    if expected == "bool" and not (isinstance(value, bool) or value in ("true", "false")):
        return f"expects bool, got the literal {value!r}"
    return None


def check_body(schema: Body, body: dict[str, Any], path: str, meta: set[str] | None = None) -> list[str]:
    errors: list[str] = []
    present: set[str] = set()
    for key, value in body.items():
        if key.startswith("__"):
            continue
        if meta and key in meta:
            if key == "lifecycle":
                for life in _blocks(value) or []:
                    errors += [f"{path}.lifecycle.{k}: unknown lifecycle argument"
                               for k in life if not k.startswith("__") and k not in LIFECYCLE]
            continue
        if key == "dynamic":  # [{label: {for_each, content: [{...}], __is_block__}}, ...]
            for entry in value if isinstance(value, list) else []:
                for name, dyn in entry.items():
                    if name.startswith("__"):
                        continue
                    where = f"{path}.dynamic.{name}"
                    field = schema.get(name)
                    if field is None or field.kind != "block":
                        errors.append(f"{where}: no block {name!r} here in the google provider schema")
                        continue
                    present.add(name)
                    errors += [f"{where}.{k}: unknown dynamic argument"
                               for k in dyn if not k.startswith("__") and k not in DYNAMIC]
                    for content in _blocks(dyn.get("content")) or []:
                        errors += check_body(field.nested, content, f"{where}.content")
            continue
        field = schema.get(key)
        blocks = _blocks(value)
        if field is None:
            what = "block" if blocks is not None else "argument"
            errors.append(f"{path}.{key}: unknown {what} (not in the google provider schema)")
        elif field.kind == "block":
            if blocks is None:
                errors.append(f"{path}.{key}: is a block, write `{key} {{ ... }}`")
                continue
            present.add(key)
            if field.single and len(blocks) > 1:
                errors.append(f"{path}.{key}: at most one {key} block allowed, got {len(blocks)}")
            for block in blocks:
                errors += check_body(field.nested, block, f"{path}.{key}")
        elif blocks is not None and MARKS_BLOCKS:
            errors.append(f"{path}.{key}: is an attribute ({field.type}), write `{key} = ...`, not a block")
        elif value is not None:  # null is the same as unset
            present.add(key)
            problem = type_problem(field.type, value)
            if problem:
                errors.append(f"{path}.{key}: {problem}")
    errors += [f"{path}.{name}: required {field.kind} is missing"
               for name, field in schema.items() if field.required and name not in present]
    return errors


def check(schema: ProviderSchema, kind: str, rtype: str, name: str, body: dict[str, Any]) -> list[str]:
    """Every problem of one resource / data / provider block, as 'path: problem'."""
    path = f"{'data.' if kind == 'data' else ''}{rtype}.{name}"
    if kind == "provider":
        return check_body(schema.provider, body, f"provider.{rtype}.{name}", META[kind])
    found = (schema.resources if kind == "resource" else schema.data_sources).get(rtype)
    if found is None:
        return [f"{path}: unknown {kind} type {rtype!r} in google provider {schema.version}"]
    return check_body(found, body, path, META[kind])


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def schema() -> ProviderSchema:
    if assembly_path() is None:
        pytest.skip("cdktn-provider-google is not installed (pip install -r requirements-dev.txt)")
    return load_schema()


def provider_of(kind: str, rtype: str, body: dict[str, Any]) -> str:
    """The provider (local name) a block belongs to: its `provider` meta-argument, else the type's prefix."""
    if kind == "provider":
        return rtype
    ref = str(body.get("provider") or rtype.split("_")[0])
    return ref.removeprefix("${").removesuffix("}").split(".")[0]


BLOCKS = [(kind, rtype, name) for kind in ("resource", "data", "provider")
          for rtype, by_name in sorted(TF[kind].items()) for name in sorted(by_name)]


@pytest.mark.parametrize(("kind", "rtype", "name"), BLOCKS, ids=[f"{k}.{t}.{n}" for k, t, n in BLOCKS])
def test_real_config_matches_provider_schema(schema: ProviderSchema, kind: str, rtype: str, name: str) -> None:
    body = TF[kind][rtype][name]
    provider = provider_of(kind, rtype, body)
    if provider != "google":
        pytest.skip(f"{kind} {rtype}.{name} belongs to provider {provider!r}, whose schema is not loaded")
    errors = check(schema, kind, rtype, name, body)
    assert not errors, "\n".join(errors)


def test_schema_is_the_pinned_google_provider(schema: ProviderSchema) -> None:
    assert sum(provider_of("resource", t, b) == "google" for t, by in TF["resource"].items() for b in by.values()) > 10
    pinned = str(TF["required_providers"].get("terraform", {}).get("google", {}).get("version", ""))
    if not re.fullmatch(r"=?\s*\d+\.\d+\.\d+", pinned):
        pytest.skip(f"google provider not pinned to one version ({pinned!r}); the schema is google {schema.version}")
    assert pinned.lstrip("= ") == schema.version, f"terraform pins google {pinned}, the schema is {schema.version}"


def test_schema_maps_names_blocks_and_required(schema: ProviderSchema) -> None:
    function = schema.resources["google_cloudfunctions2_function"]
    assert function["name"].required and function["location"].required
    assert function["build_config"].kind == "block" and function["build_config"].single
    assert function["service_config"].nested["secret_environment_variables"].type == "list(block)"
    assert function["service_config"].nested["max_instance_count"].type == "number"
    assert function["service_config"].nested["all_traffic_on_latest_revision"].type == "bool"
    assert function["labels"].type == "map(string)"
    assert "build" in schema.resources["google_cloudbuild_trigger"]  # jsii: buildAttribute
    assert schema.data_sources["google_project"]["project_id"].kind == "attribute"
    assert "project" in schema.provider and "region" in schema.provider


def _real(kind: str, rtype: str, fallback: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the first `rtype` in terraform/, or the fallback if there is none."""
    by_name = TF[kind].get(rtype)
    return copy.deepcopy(next(iter(by_name.values())) if by_name else fallback)


def _topic() -> dict[str, Any]:
    return _real("resource", "google_pubsub_topic", {"name": "t", "labels": "${var.labels}"})


def _subscription() -> dict[str, Any]:
    return _real("resource", "google_pubsub_subscription",
                 {"name": "s", "topic": "${google_pubsub_topic.t.id}", "ack_deadline_seconds": 60})


def _function() -> dict[str, Any]:
    return _real("resource", "google_cloudfunctions2_function", {
        "name": "f", "location": "europe-west1",
        "service_config": [{"available_memory": "256M", "__is_block__": True}]})


def _block(value: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**value, "__is_block__": True}]


def test_catches_misspelled_attribute(schema: ProviderSchema) -> None:
    body = _subscription()
    body["ack_deadline_secs"] = body.pop("ack_deadline_seconds", 60)
    assert check(schema, "resource", "google_pubsub_subscription", "x", body) == [
        "google_pubsub_subscription.x.ack_deadline_secs: unknown argument (not in the google provider schema)"]
    fn = _function()
    fn["service_config"][0]["max_instances"] = 3
    assert check(schema, "resource", "google_cloudfunctions2_function", "f", fn) == [
        "google_cloudfunctions2_function.f.service_config.max_instances:"
        " unknown argument (not in the google provider schema)"]


def test_catches_missing_required(schema: ProviderSchema) -> None:
    body = _topic()
    del body["name"]
    assert check(schema, "resource", "google_pubsub_topic", "x", body) == [
        "google_pubsub_topic.x.name: required attribute is missing"]
    body = _subscription()
    body["dead_letter_policy"] = _block({"max_delivery_attempts": 5})
    body["push_config"] = _block({"oidc_token": _block({"audience": "a"})})
    assert sorted(check(schema, "resource", "google_pubsub_subscription", "x", body)) == [
        "google_pubsub_subscription.x.push_config.oidc_token.service_account_email: required attribute is missing",
        "google_pubsub_subscription.x.push_config.push_endpoint: required attribute is missing",
    ]
    assert check(schema, "resource", "google_pubsub_topic", "x", {**_topic(), "name": None}) == [
        "google_pubsub_topic.x.name: required attribute is missing"]


@pytest.mark.parametrize(("key", "value", "where", "problem"), [
    ("ack_deadline_seconds", "sixty", "ack_deadline_seconds", "expects number, got the string 'sixty'"),
    ("ack_deadline_seconds", True, "ack_deadline_seconds", "expects number, got the bool True"),
    ("retain_acked_messages", 1, "retain_acked_messages", "expects bool, got the literal 1"),
    ("retain_acked_messages", "yes", "retain_acked_messages", "expects bool, got the literal 'yes'"),
    ("labels", "team", "labels", "expects map(string), got the literal 'team'"),
    ("labels", {"a": ["b"]}, "labels", "['a'] expects string, got a list literal"),
    ("name", ["a"], "name", "expects string, got a list literal"),
    ("dead_letter_policy", _block({"max_delivery_attempts": "five"}), "dead_letter_policy.max_delivery_attempts",
     "expects number, got the string 'five'"),
])
def test_catches_wrong_literal_type(schema: ProviderSchema, key: str, value: Any, where: str, problem: str) -> None:
    body = {**_subscription(), key: value}
    assert check(schema, "resource", "google_pubsub_subscription", "x", body) == [
        f"google_pubsub_subscription.x.{where}: {problem}"]


def test_accepts_what_terraform_converts_and_expressions(schema: ProviderSchema) -> None:
    body = {**_subscription(), "ack_deadline_seconds": "60", "retain_acked_messages": "true", "name": 7,
            "labels": {"a": "${var.b}", "c": 1}, "message_retention_duration": "${var.x ? 1 : true}",
            "dead_letter_policy": _block({"max_delivery_attempts": "${local.n}"})}
    assert check(schema, "resource", "google_pubsub_subscription", "x", body) == []


def test_catches_unknown_resource_type(schema: ProviderSchema) -> None:
    assert check(schema, "resource", "google_pubsub_topik", "x", _topic()) == [
        f"google_pubsub_topik.x: unknown resource type 'google_pubsub_topik' in google provider {schema.version}"]
    assert check(schema, "data", "google_projekt", "p", {}) == [
        f"data.google_projekt.p: unknown data type 'google_projekt' in google provider {schema.version}"]


def test_catches_unknown_nested_block(schema: ProviderSchema) -> None:
    body = _subscription()
    body["push_confg"] = _block({"push_endpoint": "https://x"})
    body["retry_policy"] = _block({"minimum_backoff": "10s", "backoff": _block({"x": 1})})
    assert sorted(check(schema, "resource", "google_pubsub_subscription", "x", body)) == [
        "google_pubsub_subscription.x.push_confg: unknown block (not in the google provider schema)",
        "google_pubsub_subscription.x.retry_policy.backoff: unknown block (not in the google provider schema)",
    ]


def _parse(hcl: str) -> dict[str, Any]:
    """The body of the one resource in an HCL snippet, loaded as terraform/ is."""
    ((_, by_name),) = _norm(hcl2.loads(hcl))["resource"][0].items()
    ((_, body),) = by_name.items()
    assert isinstance(body, dict)
    return body


def test_checks_dynamic_blocks_and_block_shape(schema: ProviderSchema) -> None:
    fn = _parse("""
resource "google_cloudfunctions2_function" "f" {
  name     = "f"
  location = var.region
  labels { a = "b" }
  build_config { runtime = "python311" }
  build_config { runtime = "python312" }
  service_config {
    dynamic "secret_environment_variable" {
      for_each = var.s
      content { key = "K" }
    }
    dynamic "secret_environment_variables" {
      for_each = var.s
      iterator = it
      content {
        key   = "K"
        secrt = it.value
      }
    }
  }
  dynamic "event_trigger" {
    for_each = var.t
    content { event_type = "e" }
  }
}
""")
    path = "google_cloudfunctions2_function.f"
    content = f"{path}.service_config.dynamic.secret_environment_variables.content"
    assert sorted(check(schema, "resource", "google_cloudfunctions2_function", "f", fn)) == sorted([
        f"{path}.build_config: at most one build_config block allowed, got 2",
        f"{path}.labels: is an attribute (map(string)), write `labels = ...`, not a block",
        f"{path}.service_config.dynamic.secret_environment_variable: no block 'secret_environment_variable' here"
        " in the google provider schema",
        f"{content}.secrt: unknown argument (not in the google provider schema)",
        *(f"{content}.{k}: required attribute is missing" for k in ("project_id", "secret", "version")),
    ])
    fn["dynamic"][0]["event_trigger"]["content"][0]["event_typ"] = "e"
    assert f"{path}.dynamic.event_trigger.content.event_typ: unknown argument (not in the google provider schema)" in (
        check(schema, "resource", "google_cloudfunctions2_function", "f", fn))


def test_meta_arguments_are_allowed_but_lifecycle_is_checked(schema: ProviderSchema) -> None:
    body = _parse("""
resource "google_pubsub_topic" "x" {
  count      = 1
  name       = "t"
  provider   = google.eu
  depends_on = [google_project_service.x]
  provisioner "local-exec" {
    command = "true"
  }
  lifecycle {
    prevent_destroy = true
    ignore_change   = [labels]
  }
}
""")
    assert check(schema, "resource", "google_pubsub_topic", "x", body) == [
        "google_pubsub_topic.x.lifecycle.ignore_change: unknown lifecycle argument"]
    assert check(schema, "provider", "google", "default", {"project": "p", "regoin": "r", "alias": "eu"}) == [
        "provider.google.default.regoin: unknown argument (not in the google provider schema)"]
