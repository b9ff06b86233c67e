"""Structural tests of terraform/ (the google provider cannot be downloaded here,
so `terraform validate` cannot run; these parse the HCL with python-hcl2 and
assert the deployment's shape).

Works with python-hcl2 releases that keep string quotes (>= 7) and those that
strip them: every label, key and string is unquoted, expressions stay in
Terraform's "${...}" form.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2")

ROOT = Path(__file__).resolve().parents[1]
TF_DIR = ROOT / "terraform"
NAMES = json.loads((ROOT / "shared" / "names.json").read_text(encoding="utf-8"))

FUNCTIONS = ("classify_http", "ingest_review", "on_review_labeled")


# --------------------------------------------------------------------------- #
# Loading
# --------------------------------------------------------------------------- #


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _norm(obj: Any, keep_block_markers: bool = False) -> Any:
    """Quotes stripped, comments dropped; ``__is_block__`` kept on request (``x { }`` vs ``x = {...}``)."""
    dropped = ("__comments__", "__inline_comments__") if keep_block_markers else (
        "__is_block__", "__comments__", "__inline_comments__")
    if isinstance(obj, dict):
        return {_unquote(k): _norm(v, keep_block_markers) for k, v in obj.items() if k not in dropped}
    if isinstance(obj, list):
        return [_norm(v, keep_block_markers) for v in obj]
    return _unquote(obj)


def _load_dir(directory: Path) -> dict[str, Any]:
    tf: dict[str, Any] = {
        "resource": {},
        "data": {},
        "variable": {},
        "output": {},
        "locals": {},
        "terraform": [],
        "check": {},
    }
    files = sorted(directory.glob("*.tf"))
    assert files, f"no .tf files in {directory}"
    for path in files:
        with path.open(encoding="utf-8") as fh:
            doc = _norm(hcl2.load(fh))
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for rtype, by_name in block.items():
                    for name, body in by_name.items():
                        assert name not in tf[kind].get(rtype, {}), f"duplicate {kind} {rtype}.{name}"
                        tf[kind].setdefault(rtype, {})[name] = body
        for kind in ("variable", "output", "check"):
            for block in doc.get(kind, []):
                for name, body in block.items():
                    assert name not in tf[kind], f"duplicate {kind} {name}"
                    tf[kind][name] = body
        for block in doc.get("locals", []):
            for name, value in block.items():
                assert name not in tf["locals"], f"duplicate local {name}"
                tf["locals"][name] = value
        tf["terraform"].extend(doc.get("terraform", []))
    return tf


TF = _load_dir(TF_DIR)


def resources(rtype: str) -> dict[str, Any]:
    found: dict[str, Any] = TF["resource"].get(rtype, {})
    return found


def res(rtype: str, name: str) -> dict[str, Any]:
    found = resources(rtype)
    assert name in found, f"resource {rtype}.{name} is not defined in terraform/"
    body: dict[str, Any] = found[name]
    return body


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a body (python-hcl2 gives a list)."""
    value = body.get(name)
    assert value, f"block {name!r} missing"
    if isinstance(value, list):
        assert len(value) == 1, f"expected one {name!r} block, got {len(value)}"
        value = value[0]
    assert isinstance(value, dict)
    return value


def dynamic_blocks(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in body.get("dynamic", []) or []:
        for name, dyn in entry.items():
            out[name] = dyn
    return out


def walk_strings(obj: Any, path: tuple[Any, ...] = ()) -> Any:
    """Yield (path, string) for every string in a parsed body."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from walk_strings(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from walk_strings(v, (*path, i))
    elif isinstance(obj, str):
        yield path, obj


def resolve_names(expr: str) -> str:
    """Substitute ${local.names.a.b} with its value from shared/names.json."""

    def sub(match: re.Match[str]) -> str:
        value = NAMES
        for key in match.group(1).split("."):
            assert isinstance(value, dict) and key in value, f"names.json has no key {match.group(1)!r}"
            value = value[key]
        return str(value)

    return re.sub(r"\$\{local\.names\.([A-Za-z0-9_.]+)\}", sub, expr)


def is_ref(expr: Any, target: str) -> bool:
    """expr is exactly the expression ${target}."""
    return isinstance(expr, str) and expr.replace(" ", "") == "${" + target.replace(" ", "") + "}"


def tf_sources() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(TF_DIR.glob("*.tf"))}


def string_literals_outside_comments(text: str) -> list[str]:
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith(("#", "//"))]
    return re.findall(r'"((?:[^"\\]|\\.)*)"', "\n".join(lines))


# --------------------------------------------------------------------------- #
# versions, variables, outputs
# --------------------------------------------------------------------------- #


def test_versions_pin_terraform_and_providers_exactly() -> None:
    (terraform,) = TF["terraform"]
    assert re.fullmatch(r">=\s*1\.1[1-9](\.\d+)?", terraform["required_version"]), "write-only secrets need >= 1.11"
    providers = block(terraform, "required_providers")
    expected = {"google": "hashicorp/google", "google-beta": "hashicorp/google-beta", "archive": "hashicorp/archive",
                "time": "hashicorp/time"}
    assert {name: p["source"] for name, p in providers.items()} == expected
    for name, provider in providers.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", provider["version"]), f"{name} is not pinned exactly"
    assert providers["google"]["version"] == providers["google-beta"]["version"] == "8.7.0"  # the schema we test
    assert tuple(map(int, providers["archive"]["version"].split("."))) >= (2, 5, 0), "glob excludes need 2.5.0"


def test_every_variable_has_type_and_description() -> None:
    assert TF["variable"], "no variables"
    for name, body in TF["variable"].items():
        assert body.get("type"), f"variable {name} has no type"
        assert isinstance(body.get("description"), str) and len(body["description"].strip()) > 10, (
            f"variable {name} has no real description"
        )


def test_variables_with_fixed_choices_are_validated() -> None:
    for name in ("project_id", "region", "tiers", "log_level", "http_ingress", "event_ingress",
                 "http_invoker_members", "followup_threshold", "secret_version", "firestore_location"):
        assert TF["variable"][name].get("validation"), f"variable {name} has no validation"


def test_outputs_are_described_and_never_secret() -> None:
    assert {"classify_http_url", "ingest_topic", "followup_topic", "dead_letter_topic"} <= set(TF["output"])
    for name, body in TF["output"].items():
        assert body.get("description"), f"output {name} has no description"
        assert not re.search(r"secret|password|token|api_?key|webhook", name, re.I), f"output {name} looks secret"
        assert body.get("sensitive") in (None, False, "false"), f"output {name} is sensitive"
        for _, s in walk_strings(body.get("value")):
            assert "google_secret_manager" not in s, f"output {name} references a secret: {s}"


def test_topic_outputs_name_the_topics_defined_here() -> None:
    assert is_ref(TF["output"]["ingest_topic"]["value"], "google_pubsub_topic.ingest.id")
    assert is_ref(TF["output"]["followup_topic"]["value"], "google_pubsub_topic.followup.id")
    assert is_ref(TF["output"]["dead_letter_topic"]["value"], "google_pubsub_topic.dead_letter.id")
    assert is_ref(
        TF["output"]["classify_http_url"]["value"],
        'google_cloudfunctions2_function.function["classify_http"].service_config[0].uri',
    )


# --------------------------------------------------------------------------- #
# names.json is the single source of names
# --------------------------------------------------------------------------- #


def test_names_come_from_names_json_via_jsondecode() -> None:
    assert is_ref(TF["locals"]["names"], 'jsondecode(file("${path.module}/../shared/names.json"))')


def test_names_from_names_json_are_never_repeated_as_literals() -> None:
    names = [v for k, v in NAMES.items() if k != "_comment" and isinstance(v, str)]
    assert names
    for fname, text in tf_sources().items():
        for literal in string_literals_outside_comments(text):
            for name in names:
                assert literal != name, f"{fname}: names.json value {name!r} repeated as a literal"
                assert not literal.startswith(name + "/"), f"{fname}: {literal!r} repeats {name!r}"
                assert "/" + name not in literal.split("${")[0], f"{fname}: {literal!r} repeats {name!r}"


def test_topics_and_subscriptions_are_named_from_names_json() -> None:
    topics = resources("google_pubsub_topic")
    subs = resources("google_pubsub_subscription")
    for rtype, found in (("topic", topics), ("subscription", subs)):
        for name, body in found.items():
            assert re.fullmatch(r"\$\{local\.names\.[a-z_]+\}", body["name"]), (
                f"{rtype} {name} name {body['name']!r} is not local.names.<key>"
            )
    assert {resolve_names(b["name"]) for b in topics.values()} == {
        NAMES["ingest_topic"], NAMES["followup_topic"], NAMES["dead_letter_topic"],
    }
    assert {resolve_names(b["name"]) for b in subs.values()} == {
        NAMES["ingest_subscription"], NAMES["dead_letter_subscription"],
    }


# --------------------------------------------------------------------------- #
# Functions: sizing, runtime, env
# --------------------------------------------------------------------------- #

SIZING = {
    "available_memory": "memory",
    "available_cpu": "cpu",
    "max_instance_request_concurrency": "concurrency",
    "min_instance_count": "min_instances",
    "max_instance_count": "max_instances",
    "timeout_seconds": "timeout_seconds",
}


def function() -> dict[str, Any]:
    """The one function resource, for_each over local.functions."""
    assert set(resources("google_cloudfunctions2_function")) == {"function"}
    return res("google_cloudfunctions2_function", "function")


def functions() -> dict[str, Any]:
    """Each function's entry of local.functions (what varies between them)."""
    found: dict[str, Any] = TF["locals"]["functions"]
    return found


def test_exactly_the_three_functions_with_their_entry_points() -> None:
    assert set(functions()) == set(FUNCTIONS) == set(NAMES["functions"])
    body = function()
    assert is_ref(body["for_each"], "local.functions")
    assert is_ref(body["name"], "local.function_names[each.key]")
    build = block(body, "build_config")
    assert build["runtime"] == "python311"
    assert is_ref(build["entry_point"], "local.names.functions[each.key]")
    storage = block(block(build, "source"), "storage_source")
    assert is_ref(storage["bucket"], "google_storage_bucket.source.name")
    assert is_ref(storage["object"], "google_storage_bucket_object.source.name")
    assert is_ref(build["service_account"], "google_service_account.build.id")
    assert is_ref(build["docker_repository"], "google_artifact_registry_repository.functions.id")
    for old in FUNCTIONS:  # state of the three resources this one replaced moves, nothing is recreated
        assert f"google_cloudfunctions2_function.{old}" in tf_sources()["functions.tf"]


def test_function_sizing_comes_only_from_the_chosen_tier() -> None:
    tier_local = TF["locals"]["tier"]
    assert "var.function_tiers" in tier_local and "local.tiers" in tier_local, tier_local
    assert "local.default_tiers" in TF["locals"]["tiers"] and "var.tiers" in TF["locals"]["tiers"]
    service = block(function(), "service_config")
    for attr, field in SIZING.items():
        expr = service.get(attr)
        assert isinstance(expr, str), f"{attr} is missing or a literal ({expr!r})"
        if attr == "min_instance_count":
            assert is_ref(expr, "each.value.min_instances")
            for name, entry in functions().items():
                assert f"local.tier.{name}.min_instances" in entry["min_instances"], name
            continue
        assert is_ref(expr, f"local.tier[each.key].{field}"), f"{attr} = {expr!r} is not from the tier"


def _mib(memory: str) -> int:
    return int(memory[:-2]) * (1024 if memory.endswith("Gi") else 1)


def test_tiers_variable_shape_and_measured_defaults() -> None:
    tiers = TF["variable"]["tiers"]
    shape = re.sub(r"\s+", "", tiers["type"])
    for field, ftype in (("memory", "string"), ("cpu", "string"), ("concurrency", "number"),
                         ("min_instances", "number"), ("max_instances", "number"),
                         ("timeout_seconds", "number")):
        assert re.search(rf"{field}=optional\({ftype},", shape), f"tiers lacks optional {field}: {shape}"
    assert shape.startswith(("map(object(", "${map(object(")) and tiers["default"] == {}
    default = TF["locals"]["default_tiers"]
    standard = default["standard"]
    assert standard["memory"] == "512Mi" and standard["cpu"] == "1" and standard["concurrency"] == 1
    http = default["http"]
    assert _mib(http["memory"]) > _mib(standard["memory"])
    assert http["concurrency"] > 1 and float(http["cpu"]) >= 1
    chosen = TF["variable"]["function_tiers"]["default"]
    assert set(chosen) == set(FUNCTIONS)
    assert chosen == {"classify_http": "http", "ingest_review": "ingest", "on_review_labeled": "standard"}
    assert all(t in default for t in chosen.values())
    text = (TF_DIR / "main.tf").read_text(encoding="utf-8")
    assert re.search(r"250\s*MB", text), "measured RSS is not noted by the defaults"


def test_ingest_absorbs_a_burst_instead_of_burning_delivery_attempts() -> None:
    ingest = TF["locals"]["default_tiers"][TF["variable"]["function_tiers"]["default"]["ingest_review"]]
    assert ingest["concurrency"] >= 4 and ingest["max_instances"] >= 20
    assert NAMES["max_delivery_attempts"] >= 10


def test_default_tiers_respect_cloud_runs_cpu_for_memory_rule() -> None:
    def minimum(mib: int) -> int:
        return 8 if mib > 24576 else 6 if mib > 16384 else 4 if mib > 8192 else 2 if mib > 4096 else 0

    for name, tier in TF["locals"]["default_tiers"].items():
        assert float(tier["cpu"]) >= minimum(_mib(tier["memory"])), name
    validations = TF["variable"]["tiers"]["validation"]
    assert any("24576" in v["condition"] and "4096" in v["condition"] for v in validations)


def test_ingest_tier_timeout_does_not_exceed_ack_deadline_by_default() -> None:
    default = TF["locals"]["default_tiers"]
    ingest_tier = TF["variable"]["function_tiers"]["default"]["ingest_review"]
    assert default[ingest_tier]["timeout_seconds"] <= NAMES["ack_deadline_seconds"]


def test_http_min_instances_can_buy_away_cold_starts() -> None:
    expr = functions()["classify_http"]["min_instances"]
    assert "var.http_min_instances" in expr and "local.tier.classify_http.min_instances" in expr


REQUIRED_ENV = {
    "GOOGLE_CLOUD_PROJECT", "FIRESTORE_DATABASE", "REVIEWS_COLLECTION", "FOLLOWUPS_COLLECTION",
    "REJECTED_COLLECTION", "FOLLOWUP_TOPIC", "FOLLOWUP_THRESHOLD", "FOLLOWUP_HIGH_PRIORITY",
    "FOLLOWUP_UNSURE_MIN", "MAX_REVIEW_CHARS", "MAX_BATCH", "LOG_LEVEL",
}


def test_functions_get_the_environment_the_code_reads() -> None:
    common = TF["locals"]["common_env"]
    assert set(common) >= REQUIRED_ENV, REQUIRED_ENV - set(common)
    assert is_ref(common["REVIEWS_COLLECTION"], "local.names.reviews_collection")
    assert is_ref(common["FOLLOWUPS_COLLECTION"], "local.names.followups_collection")
    assert is_ref(common["REJECTED_COLLECTION"], "local.names.rejected_collection")
    assert is_ref(common["FOLLOWUP_TOPIC"], "google_pubsub_topic.followup.name")
    assert is_ref(common["FIRESTORE_DATABASE"], "local.firestore_database")
    env = block(function(), "service_config")["environment_variables"]
    assert "local.common_env" in env and "ORT_INTRA_OP_THREADS" in env, env
    assert "API_KEY" not in env and "WEBHOOK" not in env


def test_firestore_database_default_and_optional_creation() -> None:
    assert TF["variable"]["firestore_database"]["default"] == "(default)"
    db = res("google_firestore_database", "this")
    assert is_ref(db["count"], "var.create_firestore_database ? 1 : 0")
    assert db["type"] == "FIRESTORE_NATIVE"
    assert is_ref(db["location_id"], "var.firestore_location")
    local = TF["locals"]["firestore_database"]
    assert "google_firestore_database.this[0].name" in local and "var.firestore_database" in local


def test_required_apis_are_enabled() -> None:
    apis = TF["locals"]["required_apis"]
    for api in ("cloudfunctions", "run", "cloudbuild", "artifactregistry", "eventarc", "pubsub",
                "firestore", "secretmanager", "storage", "iam"):
        assert f"{api}.googleapis.com" in apis, api
    svc = res("google_project_service", "enabled")
    assert is_ref(svc["for_each"], "local.required_apis")


# --------------------------------------------------------------------------- #
# Triggers
# --------------------------------------------------------------------------- #


def test_firestore_trigger_matches_reviews_collection_in_names_json() -> None:
    dynamic = dynamic_blocks(function())["event_trigger"]
    if isinstance(dynamic, list):
        dynamic = dynamic[0]
    wanted = '${each.key=="on_review_labeled"?[local.names.reviews_collection]:[]}'
    assert dynamic["for_each"].replace(" ", "") == wanted
    trigger = block(dynamic, "content")
    assert trigger["event_type"] == "google.cloud.firestore.document.v1.written"
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert is_ref(trigger["trigger_region"], "var.firestore_location")
    assert is_ref(trigger["service_account_email"], "google_service_account.eventarc_invoker.email")
    filters = {f["attribute"]: f for f in trigger["event_filters"]}
    assert set(filters) == {"database", "document"}
    assert is_ref(filters["database"]["value"], "local.firestore_database")
    assert "operator" not in filters["database"]
    document = filters["document"]
    assert document["operator"] == "match-path-pattern"
    assert document["value"] == "${event_trigger.value}/{review_id}", "collection must come from names.json"


def test_http_functions_have_no_event_trigger() -> None:
    # ingest_review is fed by the owned push subscription, not an Eventarc Pub/Sub trigger: only the dynamic
    # trigger above, whose for_each is empty for every function but on_review_labeled.
    assert "event_trigger" not in function()


def test_push_subscription_owns_retry_and_dead_letter() -> None:
    sub = res("google_pubsub_subscription", "ingest_push")
    assert is_ref(sub["topic"], "google_pubsub_topic.ingest.id")
    assert is_ref(sub["ack_deadline_seconds"], "local.names.ack_deadline_seconds")
    push = block(sub, "push_config")
    endpoint = push["push_endpoint"]
    assert endpoint.startswith('${google_cloudfunctions2_function.function["ingest_review"].service_config[0].uri}/')
    assert endpoint.endswith("/projects/${var.project_id}/topics/${google_pubsub_topic.ingest.name}"), endpoint
    oidc = block(push, "oidc_token")
    assert is_ref(oidc["service_account_email"], "google_service_account.pubsub_invoker.email")
    assert is_ref(oidc["audience"], 'google_cloudfunctions2_function.function["ingest_review"].service_config[0].uri')
    retry = block(sub, "retry_policy")
    assert resolve_names(retry["minimum_backoff"]) == f"{NAMES['min_retry_backoff_seconds']}s"
    assert resolve_names(retry["maximum_backoff"]) == f"{NAMES['max_retry_backoff_seconds']}s"
    dead = block(sub, "dead_letter_policy")
    assert is_ref(dead["dead_letter_topic"], "google_pubsub_topic.dead_letter.id")
    assert is_ref(dead["max_delivery_attempts"], "local.names.max_delivery_attempts")
    assert 5 <= NAMES["max_delivery_attempts"] <= 100


def test_dead_letter_subscription_keeps_messages() -> None:
    hold = res("google_pubsub_subscription", "dead_letter_hold")
    assert is_ref(hold["topic"], "google_pubsub_topic.dead_letter.id")
    assert "push_config" not in hold
    assert resolve_names(hold["message_retention_duration"]) == f"{NAMES['dead_letter_retention_seconds']}s"
    assert block(hold, "expiration_policy")["ttl"] == ""


def test_pubsub_service_agent_can_dead_letter() -> None:
    agent = TF["locals"]["pubsub_service_agent"]
    assert 'google_project_service_identity.agent["pubsub.googleapis.com"].email' in agent
    identity = res("google_project_service_identity", "agent")
    assert identity["provider"] == "${google-beta}" or "google-beta" in identity["provider"]
    assert "pubsub.googleapis.com" in identity["for_each"] and "eventarc.googleapis.com" in identity["for_each"]
    pub = res("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert is_ref(pub["topic"], "google_pubsub_topic.dead_letter.name")
    assert pub["role"] == "roles/pubsub.publisher" and is_ref(pub["member"], "local.pubsub_service_agent")
    sub = res("google_pubsub_subscription_iam_member", "ingest_dead_letter_subscriber")
    assert is_ref(sub["subscription"], "google_pubsub_subscription.ingest_push.name")
    assert sub["role"] == "roles/pubsub.subscriber" and is_ref(sub["member"], "local.pubsub_service_agent")


def test_invokers_hold_run_invoker_on_their_own_function_only() -> None:
    push = res("google_cloud_run_service_iam_member", "pubsub_invoker")
    assert is_ref(push["service"], 'google_cloudfunctions2_function.function["ingest_review"].name')
    assert push["role"] == "roles/run.invoker"
    assert "google_service_account.pubsub_invoker.email" in push["member"]
    eventarc = res("google_cloud_run_service_iam_member", "eventarc_invoker")
    assert is_ref(eventarc["service"], 'google_cloudfunctions2_function.function["on_review_labeled"].name')
    assert eventarc["role"] == "roles/run.invoker"
    assert "google_service_account.eventarc_invoker.email" in eventarc["member"]
    for name in ("pubsub_invoker", "eventarc_invoker", "classify_public", "classify_invokers"):
        binding = res("google_cloud_run_service_iam_member", name)
        (lifecycle,) = binding["lifecycle"]
        assert "google_cloudfunctions2_function.function[" in str(lifecycle["replace_triggered_by"]), name
    receiver = res("google_project_iam_member", "eventarc_receiver")
    assert receiver["role"] == "roles/eventarc.eventReceiver"
    assert "google_service_account.eventarc_invoker.email" in receiver["member"]


REF = re.compile(r"(?<![\w.])(data\.)?(google_[a-z0-9_]+|archive_file)\.([a-z0-9_]+)")


def test_every_reference_points_at_something_defined_here() -> None:
    bodies = [("resource", b) for found in TF["resource"].values() for b in found.values()]
    bodies += [("data", b) for found in TF["data"].values() for b in found.values()]
    bodies += [("output", b) for b in TF["output"].values()]
    bodies += [("locals", TF["locals"])]
    checked = 0
    for _, body in bodies:
        for _, s in walk_strings(body):
            for is_data, rtype, name in REF.findall(s):
                kind = "data" if is_data else "resource"
                assert name in TF[kind].get(rtype, {}), f"{s!r} references undefined {kind} {rtype}.{name}"
                checked += 1
    assert checked > 50, "too few references found: parser output changed?"


# --------------------------------------------------------------------------- #
# Source archive
# --------------------------------------------------------------------------- #


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    """doublestar.PathMatch semantics, as used by the archive provider's excludes."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def _archive_listing(root: Path, allow: list[str], deny: list[str]) -> list[str]:
    """Files the archive_file data source would zip: storage.tf's locals, re-done in Python."""
    top: set[str] = set()  # fileset("*"), fileset("*/*"), fileset("*/*/*")
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        depth = len(rel.parts)
        if depth >= 2:
            dirnames[:] = []
        if filenames:
            if depth == 0:
                top.update(filenames)
            elif depth <= 2:
                top.add(rel.parts[0])
    excludes = [_glob_to_regex(p) for p in sorted(set(deny) | {t for t in top if t not in allow})]
    included: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if not any(x.match((rel / d).as_posix()) for x in excludes)]
        for f in filenames:
            relf = (rel / f).as_posix()
            if not any(x.match(relf) for x in excludes):
                included.append(relf)
    return sorted(included)


def test_source_archive_is_built_from_the_allow_list() -> None:
    archive = res("archive_file", "source")  # a resource: built at apply, not at plan
    assert archive["type"] == "zip"
    assert is_ref(archive["source_dir"], "local.source_root")
    assert is_ref(archive["excludes"], "local.source_excludes")
    assert archive["output_path"].startswith("${path.module}/.build/")
    assert TF["locals"]["source_root"] == "${path.module}/.."
    assert sorted(TF["locals"]["source_allow"]) == sorted(
        ["main.py", "requirements.txt", "functions", "shared", "model_artifacts"]
    )
    deny = TF["locals"]["source_deny"]
    for d in ("tests", "tools", "bench", "local", "data", "terraform", ".*", "**/__pycache__"):
        assert d in deny, f"{d} is not excluded from the deployed source"
    excludes = TF["locals"]["source_excludes"]
    assert "local.source_deny" in excludes and "local.source_allow" in excludes and "local.source_top_level" in excludes
    obj = res("google_storage_bucket_object", "source")
    assert is_ref(obj["source"], "archive_file.source.output_path")
    assert "archive_file.source.output_md5" in obj["name"], "object name must change with the content"


def test_source_archive_excludes_everything_else(tmp_path: Path) -> None:
    allow, deny = TF["locals"]["source_allow"], TF["locals"]["source_deny"]
    tree = [
        "main.py", "requirements.txt", "README.md", ".gitignore", "pyproject.toml",
        "functions/classify.py", "functions/__pycache__/classify.cpython-311.pyc",
        "shared/names.json", "shared/config.py", "model_artifacts/model.int8.onnx",
        "tests/test_x.py", "tools/train.py", "bench/run.py", "local/compose.yaml",
        "data/reviews/source/books.jsonl", "terraform/main.tf", "terraform/.build/function-source.zip",
        "docs/design.md", ".venv/lib/python3.11/site-packages/x.py", ".git/HEAD",
        "notebooks/explore.ipynb", "scratch/a/b.txt", "data2/x/y/z.csv", "tests/fixtures/a/b/c.json",
    ]
    for rel in tree:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x", encoding="utf-8")
    included = _archive_listing(tmp_path, allow, deny)
    # data2/ has files only three dirs down: the shallow scan cannot see it,
    # which is why the checkout itself is checked by the next test.
    assert included == sorted([
        "main.py", "requirements.txt", "functions/classify.py", "shared/names.json", "shared/config.py",
        "model_artifacts/model.int8.onnx", "data2/x/y/z.csv",
    ]), included


def test_source_archive_of_this_checkout_ships_only_deployable_code() -> None:
    allow, deny = TF["locals"]["source_allow"], TF["locals"]["source_deny"]
    for rel in _archive_listing(ROOT, allow, deny):
        assert rel.split("/")[0] in allow, f"{rel} would be deployed"
        assert "__pycache__" not in rel and not rel.endswith(".pyc")


def test_source_bucket_is_locked_down() -> None:
    bucket = res("google_storage_bucket", "source")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert block(bucket, "versioning")["enabled"] is True
    assert "var.project_id" in bucket["name"]


# --------------------------------------------------------------------------- #
# IAM and secrets
# --------------------------------------------------------------------------- #


def test_all_users_only_behind_the_public_variable() -> None:
    guarded = []
    for rtype, found in TF["resource"].items():
        for name, body in found.items():
            for path, s in walk_strings(body):
                if "allUsers" in s or "allAuthenticatedUsers" in s:
                    assert path[0] in ("member", "members"), f"{rtype}.{name}: {path} = {s}"
                    assert is_ref(body.get("count"), "var.allow_unauthenticated_http ? 1 : 0"), (
                        f"{rtype}.{name} grants {s} without the allow_unauthenticated_http guard"
                    )
                    assert body["role"] == "roles/run.invoker"
                    assert is_ref(body["service"], 'google_cloudfunctions2_function.function["classify_http"].name')
                    guarded.append(name)
    assert guarded == ["classify_public"], guarded
    for _, s in walk_strings(TF["locals"]):
        assert "allUsers" not in s and "allAuthenticatedUsers" not in s
    public = TF["variable"]["allow_unauthenticated_http"]
    assert public["default"] is False
    # an error at plan, not a check block's warning
    (validation,) = public["validation"]
    assert validation["condition"].replace(" ", "") == "${!var.allow_unauthenticated_http||var.enable_api_key}"
    assert not TF["check"], "check blocks only warn"


def test_one_service_account_per_function() -> None:
    sa_ids = TF["locals"]["function_sa_ids"]
    assert set(sa_ids) == set(FUNCTIONS)
    assert is_ref(res("google_service_account", "function")["for_each"], "local.function_sa_ids")
    email = block(function(), "service_config")["service_account_email"]
    assert is_ref(email, "google_service_account.function[each.key].email"), email


def test_roles_are_least_privilege() -> None:
    project_roles = {body["role"] for body in resources("google_project_iam_member").values()}
    assert project_roles == {"roles/datastore.user", "roles/eventarc.eventReceiver", "roles/logging.logWriter",
                             "roles/storage.objectViewer", "roles/dataflow.worker"}, project_roles
    assert is_ref(res("google_project_iam_member", "dataflow_worker")["count"], "var.enable_backfill ? 1 : 0")
    for rtype in ("google_project_iam_binding", "google_project_iam_policy"):
        assert not resources(rtype), f"{rtype} is authoritative; use *_iam_member"
    for _, s in walk_strings(TF["resource"]):
        assert not re.search(r"roles/(owner|editor|viewer)\b", s), s
    # the project-wide grants that have a narrower target carry an IAM condition
    for name in ("datastore_user", "build_source_reader", "dataflow_firestore"):
        (condition,) = res("google_project_iam_member", name)["condition"]
        assert condition["title"] and condition["expression"], name
    assert "local.firestore_database" in block(res("google_project_iam_member", "datastore_user"),
                                                "condition")["expression"]
    reader = block(res("google_project_iam_member", "build_source_reader"), "condition")["expression"]
    assert "gcf-v2-sources-${data.google_project.this.number}-${var.region}" in reader
    writer = res("google_artifact_registry_repository_iam_member", "build_writer")
    assert writer["role"] == "roles/artifactregistry.writer"
    assert is_ref(writer["repository"], "google_artifact_registry_repository.functions.name")
    datastore = res("google_project_iam_member", "datastore_user")
    assert datastore["role"] == "roles/datastore.user"
    assert set(re.findall(r'"([a-z_]+)"', TF["locals"]["firestore_users"])) <= {"ingest_review", "on_review_labeled"}
    pub = res("google_pubsub_topic_iam_member", "followup_publisher")
    assert is_ref(pub["topic"], "google_pubsub_topic.followup.name")
    assert pub["role"] == "roles/pubsub.publisher"
    assert 'google_service_account.function["on_review_labeled"].email' in pub["member"]
    publishers = [
        b for b in resources("google_pubsub_topic_iam_member").values() if b["role"] == "roles/pubsub.publisher"
    ]
    assert len(publishers) == 2  # follow-up (labeled fn) and dead-letter (Pub/Sub agent)


def test_secrets_are_own_secret_accessors_only() -> None:
    api = res("google_secret_manager_secret_iam_member", "api_key")
    assert is_ref(api["count"], "var.enable_api_key ? 1 : 0")
    assert is_ref(api["secret_id"], "google_secret_manager_secret.api_key[0].secret_id")
    assert 'google_service_account.function["classify_http"]' in api["member"]
    hook = res("google_secret_manager_secret_iam_member", "followup_webhook_url")
    assert is_ref(hook["count"], "var.enable_followup_webhook ? 1 : 0")
    assert is_ref(hook["secret_id"], "google_secret_manager_secret.followup_webhook_url[0].secret_id")
    assert 'google_service_account.function["on_review_labeled"]' in hook["member"]
    for body in (api, hook):
        assert body["role"] == "roles/secretmanager.secretAccessor"


def test_secrets_are_mounted_only_through_secret_environment_variables() -> None:
    # Values reach Secret Manager only through write-only arguments fed by ephemeral variables: never in state.
    for name, variable in (("api_key", "api_key"), ("followup_webhook_url", "followup_webhook_url")):
        version = res("google_secret_manager_secret_version", name)
        assert set(version) == {"count", "secret", "secret_data_wo", "secret_data_wo_version"}, version
        assert is_ref(version["secret_data_wo"], f"var.{variable}")
        declared = TF["variable"][variable]
        assert declared["ephemeral"] is True and declared["sensitive"] is True and declared["default"] is None
    service = block(function(), "service_config")
    assert "secret_environment_variables" not in service, "unguarded secret mount"
    dyn = dynamic_blocks(service)["secret_environment_variables"]
    dyn = dyn[0] if isinstance(dyn, list) else dyn
    assert is_ref(dyn["for_each"], "each.value.secrets")
    content = block(dyn, "content")
    assert is_ref(content["key"], "secret_environment_variables.key")
    assert is_ref(content["secret"], "secret_environment_variables.value")
    assert is_ref(content["version"], "var.secret_version")
    mounts = {name: entry["secrets"] for name, entry in functions().items()}
    assert mounts["ingest_review"].replace(" ", "") == "${tomap({})}"
    assert "var.enable_api_key" in mounts["classify_http"] and "API_KEY" in mounts["classify_http"]
    assert "google_secret_manager_secret.api_key" in mounts["classify_http"]
    assert "var.enable_followup_webhook" in mounts["on_review_labeled"]
    assert "FOLLOWUP_WEBHOOK_URL" in mounts["on_review_labeled"]
    # Anywhere else a secret is referenced must be its IAM member or a depends_on.
    for rtype, found in TF["resource"].items():
        for name, body in found.items():
            for path, s in walk_strings(body):
                if "google_secret_manager_secret." not in s or rtype.startswith("google_secret_manager_secret"):
                    continue
                assert path[0] in ("depends_on", "triggers") or (
                    "dynamic" in path and "secret_environment_variables" in path
                ), f"{rtype}.{name} references a secret outside secret_environment_variables: {path}"
    for key, s in walk_strings(TF["locals"]):
        assert "google_secret_manager" not in s or key[:3] in (("functions", "classify_http", "secrets"),
                                                               ("functions", "on_review_labeled", "secrets")), key
    for name, body in TF["variable"].items():
        if re.search(r"(api_key|webhook_url|password|token)$", name) and body["type"] in ("string", "${string}"):
            assert body.get("ephemeral") is True, f"secret value as a non-ephemeral variable: {name}"


def test_secret_containers_are_optional() -> None:
    for name, flag in (("api_key", "var.enable_api_key"), ("followup_webhook_url", "var.enable_followup_webhook")):
        secret = res("google_secret_manager_secret", name)
        assert is_ref(secret["count"], f"{flag} ? 1 : 0")
        assert block(secret, "replication")


# --------------------------------------------------------------------------- #
# Checkov skips, docs, example, check script
# --------------------------------------------------------------------------- #


def test_checkov_skips_carry_a_reason() -> None:
    for fname, text in tf_sources().items():
        for match in re.finditer(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)", text):
            assert match.group(2) == ":" and len(match.group(3).strip()) > 20, (
                f"{fname}: checkov skip {match.group(1)} lacks a reason"
            )


def test_readme_documents_inputs_outputs_and_commands() -> None:
    readme = (TF_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", readme, re.M)
    for name in TF["variable"]:
        assert name in rows, f"variable {name} missing from the README inputs table"
    for name in TF["output"]:
        assert name in rows, f"output {name} missing from the README outputs table"
    assert "| name | description | type | default |" in readme
    assert "terraform init\n" in readme
    assert re.search(r"terraform apply -var project_id=", readme)
    assert "terraform init -backend=false && terraform validate" in readme
    assert "gcloud secrets versions add" in readme
    assert re.search(r"dead.letter policy", readme, re.I) and "push subscription" in readme


def test_tfvars_example_sets_only_declared_variables() -> None:
    with (TF_DIR / "terraform.tfvars.example").open(encoding="utf-8") as fh:
        example = _norm(hcl2.load(fh))
    example.pop("__comments__", None)
    assert "project_id" in example
    assert set(example) <= set(TF["variable"]), set(example) - set(TF["variable"])


def test_check_script_runs_fmt_and_pinned_checkov() -> None:
    script = (TF_DIR / "check.sh").read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in script
    assert re.search(r'CHECKOV_VERSION="\d+\.\d+\.\d+"', script)
    assert "terraform fmt -check -recursive terraform" in script
    assert re.search(r'checkov"? -d terraform --framework terraform --skip-download --quiet --compact', script)
    assert ".venv-checkov" in script and "CHECKPOINT_DISABLE=1" in script


# --------------------------------------------------------------------------- #
# Model per function (fast, accurate, cascade)
# --------------------------------------------------------------------------- #


def test_each_function_serves_the_model_chosen_for_it() -> None:
    models = TF["variable"]["function_models"]
    assert models["default"] == dict.fromkeys(FUNCTIONS, "fast")
    assert models.get("validation"), "function_models must be validated"
    env = TF["locals"]["model_env"]
    assert set(env) == {"fast", "accurate", "cascade"}
    assert is_ref(env["fast"]["MODEL_DIR"], "local.model_dirs.fast")
    assert is_ref(env["accurate"]["MODEL_DIR"], "local.model_dirs.accurate")
    assert is_ref(env["cascade"]["MODEL_DIR"], "local.model_dirs.fast")
    assert is_ref(env["cascade"]["CASCADE_MODEL_DIR"], "local.model_dirs.accurate")
    assert "local.names.model_artifacts" in TF["locals"]["model_dirs"]
    assert set(NAMES["model_artifacts"]) == {"fast", "accurate"}
    service = block(function(), "service_config")
    assert "local.function_model_env[each.key]" in service["environment_variables"]
    conditions = [p["condition"] for block in function()["lifecycle"] for p in block["precondition"]]
    assert any("local.model_fits_tier[each.key]" in c for c in conditions), "no memory check for the model"


def test_the_accurate_tier_is_sized_for_the_accurate_model() -> None:
    accurate = TF["locals"]["default_tiers"]["accurate"]
    mib = int(accurate["memory"][:-2]) * (1024 if accurate["memory"].endswith("Gi") else 1)
    assert mib >= 2048 and float(accurate["cpu"]) >= 1
    assert "2048" in TF["locals"]["model_fits_tier"], "the precondition and the tier must agree on 2Gi"


def test_artifacts_no_function_serves_stay_out_of_the_source_zip() -> None:
    assert "local.unserved_artifacts" in TF["locals"]["source_excludes"]
    allow, deny = TF["locals"]["source_allow"], TF["locals"]["source_deny"]
    unserved = [f"model_artifacts/{NAMES['model_artifacts']['accurate']}"]  # every function on "fast" (the default)
    shipped = _archive_listing(ROOT, allow, [*deny, *unserved])
    assert any(rel.startswith(f"model_artifacts/{NAMES['model_artifacts']['fast']}/") for rel in shipped)
    assert not any(rel.startswith(unserved[0]) for rel in shipped)


# --------------------------------------------------------------------------- #
# the example: what one apply on a new project creates
# --------------------------------------------------------------------------- #

EXAMPLE = TF_DIR / "examples" / "new-project"


def _tfvars(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return {key: _norm(value) for key, value in _norm(hcl2.load(fh)).items()}


def _instances(body: dict[str, Any], variables: dict[str, Any]) -> int:
    """How many instances a resource makes, for the count/for_each shapes this configuration uses."""

    def var(name: str) -> Any:
        return variables[name] if name in variables else TF["variable"][name].get("default")

    if "count" in body:
        match = re.fullmatch(r"\$\{var\.([a-z_]+) \? 1 : 0\}", body["count"])
        assert match, f"count shape not understood: {body['count']}"
        return 1 if var(match.group(1)) else 0
    if "for_each" not in body:
        return 1
    each = body["for_each"]
    if isinstance(each, dict):
        return len(each)
    expr = each[2:-1] if each.startswith("${") else each
    if expr.startswith("local."):
        value = TF["locals"][expr.split(".", 1)[1]]
        if isinstance(value, dict):
            return len(value)
        optional = re.match(r"\$\{toset\(concat\(var\.([a-z_]+) \? \[([^\]]*)\] : \[\], ", value)
        names = set(re.findall(r'"([^"]+)"', value))
        if optional and not var(optional.group(1)):
            names -= set(re.findall(r'"([^"]+)"', optional.group(2)))
        return len(names)
    if expr.startswith("toset(["):
        return len(set(re.findall(r'"([^"]+)"', expr)))
    match = re.fullmatch(r"(?:var\.([a-z_]+) \? )?toset\(var\.([a-z_]+)\)(?: : toset\(\[\]\))?", expr)
    assert match, f"for_each shape not understood: {each}"
    if match.group(1) and not var(match.group(1)):
        return 0
    return len(set(var(match.group(2))))


def planned(variables: dict[str, Any]) -> list[str]:
    rows = []
    for rtype, found in sorted(TF["resource"].items()):
        for name, body in sorted(found.items()):
            count = _instances(body, variables)
            if count:
                rows.append(f"{rtype}.{name} x{count}")
    return rows


def test_the_example_lists_exactly_what_apply_creates_on_a_new_project() -> None:
    variables = _tfvars(EXAMPLE / "terraform.tfvars")
    assert set(variables) <= set(TF["variable"]), set(variables) - set(TF["variable"])
    listed = [line for line in (EXAMPLE / "expected_resources.txt").read_text(encoding="utf-8").splitlines()
              if line and not line.startswith("#")]
    assert listed == planned(variables), "\n".join(planned(variables))
    total = sum(int(line.rsplit("x", 1)[1]) for line in listed)
    assert f"{total} resources" in (EXAMPLE / "expected_resources.txt").read_text(encoding="utf-8")


def test_switches_add_what_they_say() -> None:
    base = planned(_tfvars(EXAMPLE / "terraform.tfvars"))
    with_key = planned({**_tfvars(EXAMPLE / "terraform.tfvars"), "enable_api_key": True,
                        "allow_unauthenticated_http": True})
    added = sorted(set(with_key) - set(base))
    assert added == ["google_cloud_run_service_iam_member.classify_public x1",
                     "google_secret_manager_secret.api_key x1",
                     "google_secret_manager_secret_iam_member.api_key x1",
                     "google_secret_manager_secret_version.api_key x1"], added
