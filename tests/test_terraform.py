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


def _norm(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            _unquote(k): _norm(v)
            for k, v in obj.items()
            if k not in ("__is_block__", "__comments__", "__inline_comments__")
        }
    if isinstance(obj, list):
        return [_norm(v) for v in obj]
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


def test_versions_pin_terraform_and_providers() -> None:
    (terraform,) = TF["terraform"]
    assert re.fullmatch(r">=\s*1\.5(\.0)?", terraform["required_version"])
    providers = block(terraform, "required_providers")
    assert providers["google"]["source"] == "hashicorp/google"
    google_version = providers["google"]["version"]
    assert re.search(r">=\s*6\.\d", google_version) and re.search(r"<\s*7\.0", google_version), google_version
    assert providers["archive"]["source"] == "hashicorp/archive"
    assert re.search(r">=\s*2\.[4-9]", providers["archive"]["version"]), "archive excludes need glob support (>= 2.4)"


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
        "google_cloudfunctions2_function.classify_http.service_config[0].uri",
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


def functions() -> dict[str, Any]:
    return resources("google_cloudfunctions2_function")


def test_exactly_the_three_functions_with_their_entry_points() -> None:
    assert set(functions()) == set(FUNCTIONS) == set(NAMES["functions"])
    for name, body in functions().items():
        build = block(body, "build_config")
        assert build["runtime"] == "python311"
        assert is_ref(build["entry_point"], f"local.names.functions.{name}")
        assert resolve_names(build["entry_point"]) == name
        storage = block(block(build, "source"), "storage_source")
        assert is_ref(storage["bucket"], "google_storage_bucket.source.name")
        assert is_ref(storage["object"], "google_storage_bucket_object.source.name")
        assert is_ref(build["service_account"], "google_service_account.build.id")


def test_function_sizing_comes_only_from_the_chosen_tier() -> None:
    tier_local = TF["locals"]["tier"]
    assert "var.function_tiers" in tier_local and "var.tiers" in tier_local, tier_local
    for name, body in functions().items():
        service = block(body, "service_config")
        for attr, field in SIZING.items():
            expr = service.get(attr)
            assert isinstance(expr, str), f"{name}.{attr} is missing or a literal ({expr!r})"
            assert f"local.tier.{name}.{field}" in expr, f"{name}.{attr} = {expr!r} is not from its tier"
            without_tier = re.sub(r"local\.tier\.[a-z_]+\.[a-z_]+", "", expr)
            assert not re.search(r"\d", without_tier.replace("${", "")), f"{name}.{attr} mixes in a literal: {expr}"


def test_tiers_variable_shape_and_measured_defaults() -> None:
    tiers = TF["variable"]["tiers"]
    shape = re.sub(r"\s+", "", tiers["type"])
    for field, ftype in (("memory", "string"), ("cpu", "string"), ("concurrency", "number"),
                         ("min_instances", "number"), ("max_instances", "number"),
                         ("timeout_seconds", "number")):
        assert f"{field}={ftype}" in shape, f"tiers type lacks {field}: {shape}"
    assert shape.startswith(("map(object(", "${map(object("))
    default = tiers["default"]
    standard = default["standard"]
    assert standard["memory"] == "512Mi" and standard["cpu"] == "1" and standard["concurrency"] == 1
    http = default["http"]
    mib = lambda m: int(m[:-2]) * (1024 if m.endswith("Gi") else 1)  # noqa: E731
    assert mib(http["memory"]) > mib(standard["memory"])
    assert http["concurrency"] > 1 and float(http["cpu"]) >= 1
    chosen = TF["variable"]["function_tiers"]["default"]
    assert set(chosen) == set(FUNCTIONS)
    assert chosen["classify_http"] == "http"
    assert chosen["ingest_review"] == "standard" and chosen["on_review_labeled"] == "standard"
    assert all(t in default for t in chosen.values())
    text = (TF_DIR / "variables.tf").read_text(encoding="utf-8")
    assert re.search(r"250\s*MB", text) and "32 long reviews" in text, "measured RSS is not noted by the defaults"


def test_ingest_tier_timeout_does_not_exceed_ack_deadline_by_default() -> None:
    default = TF["variable"]["tiers"]["default"]
    ingest_tier = TF["variable"]["function_tiers"]["default"]["ingest_review"]
    assert default[ingest_tier]["timeout_seconds"] <= NAMES["ack_deadline_seconds"]


def test_http_min_instances_can_buy_away_cold_starts() -> None:
    expr = block(functions()["classify_http"], "service_config")["min_instance_count"]
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
    for name, body in functions().items():
        env = block(body, "service_config")["environment_variables"]
        assert "local.common_env" in env and "ORT_INTRA_OP_THREADS" in env, f"{name}: {env}"
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
    body = functions()["on_review_labeled"]
    trigger = block(body, "event_trigger")
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
    assert "local.names.reviews_collection" in document["value"], "collection must come from names.json"
    assert resolve_names(document["value"]) == f"{NAMES['reviews_collection']}/{{review_id}}"


def test_http_functions_have_no_event_trigger() -> None:
    # ingest_review is fed by the owned push subscription, not an Eventarc Pub/Sub trigger.
    for name in ("classify_http", "ingest_review"):
        assert "event_trigger" not in functions()[name], name


def test_push_subscription_owns_retry_and_dead_letter() -> None:
    sub = res("google_pubsub_subscription", "ingest_push")
    assert is_ref(sub["topic"], "google_pubsub_topic.ingest.id")
    assert is_ref(sub["ack_deadline_seconds"], "local.names.ack_deadline_seconds")
    push = block(sub, "push_config")
    endpoint = push["push_endpoint"]
    assert endpoint.startswith("${google_cloudfunctions2_function.ingest_review.service_config[0].uri}/"), endpoint
    assert endpoint.endswith("/projects/${var.project_id}/topics/${google_pubsub_topic.ingest.name}"), endpoint
    oidc = block(push, "oidc_token")
    assert is_ref(oidc["service_account_email"], "google_service_account.pubsub_invoker.email")
    assert is_ref(oidc["audience"], "google_cloudfunctions2_function.ingest_review.service_config[0].uri")
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
    assert "gcp-sa-pubsub.iam.gserviceaccount.com" in agent and "data.google_project.this.number" in agent
    pub = res("google_pubsub_topic_iam_member", "dead_letter_publisher")
    assert is_ref(pub["topic"], "google_pubsub_topic.dead_letter.name")
    assert pub["role"] == "roles/pubsub.publisher" and is_ref(pub["member"], "local.pubsub_service_agent")
    sub = res("google_pubsub_subscription_iam_member", "ingest_dead_letter_subscriber")
    assert is_ref(sub["subscription"], "google_pubsub_subscription.ingest_push.name")
    assert sub["role"] == "roles/pubsub.subscriber" and is_ref(sub["member"], "local.pubsub_service_agent")


def test_invokers_hold_run_invoker_on_their_own_function_only() -> None:
    push = res("google_cloud_run_service_iam_member", "pubsub_invoker")
    assert is_ref(push["service"], "google_cloudfunctions2_function.ingest_review.name")
    assert push["role"] == "roles/run.invoker"
    assert "google_service_account.pubsub_invoker.email" in push["member"]
    eventarc = res("google_cloud_run_service_iam_member", "eventarc_invoker")
    assert is_ref(eventarc["service"], "google_cloudfunctions2_function.on_review_labeled.name")
    assert eventarc["role"] == "roles/run.invoker"
    assert "google_service_account.eventarc_invoker.email" in eventarc["member"]
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
    archive = TF["data"]["archive_file"]["source"]
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
    assert is_ref(obj["source"], "data.archive_file.source.output_path")
    assert "data.archive_file.source.output_md5" in obj["name"], "object name must change with the content"


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
                    assert is_ref(body["service"], "google_cloudfunctions2_function.classify_http.name")
                    guarded.append(name)
    assert guarded == ["classify_public"], guarded
    for _, s in walk_strings(TF["locals"]):
        assert "allUsers" not in s and "allAuthenticatedUsers" not in s
    assert TF["variable"]["allow_unauthenticated_http"]["default"] is False


def test_one_service_account_per_function() -> None:
    sa_ids = TF["locals"]["function_sa_ids"]
    assert set(sa_ids) == set(FUNCTIONS)
    assert is_ref(res("google_service_account", "function")["for_each"], "local.function_sa_ids")
    emails = set()
    for name, body in functions().items():
        email = block(body, "service_config")["service_account_email"]
        assert is_ref(email, f'google_service_account.function["{name}"].email'), f"{name}: {email}"
        emails.add(email)
    assert len(emails) == 3


def test_roles_are_least_privilege() -> None:
    project_roles: set[str] = set()
    for body in resources("google_project_iam_member").values():
        role = body["role"]
        if role.startswith("${"):
            role_set = TF["locals"]["build_roles"] if "each.value" in role else role
            project_roles.update(re.findall(r"roles/[A-Za-z.]+", str(role_set)))
        else:
            project_roles.add(role)
    assert project_roles <= {
        "roles/datastore.user", "roles/eventarc.eventReceiver",
        "roles/artifactregistry.writer", "roles/logging.logWriter",
    }, project_roles
    for rtype in ("google_project_iam_binding", "google_project_iam_policy"):
        assert not resources(rtype), f"{rtype} is authoritative; use *_iam_member"
    for _, s in walk_strings(TF["resource"]):
        assert not re.search(r"roles/(owner|editor|viewer)\b", s), s
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
    assert not resources("google_secret_manager_secret_version"), "secret values must not live in Terraform"
    mounts: dict[str, Any] = {}
    for name, body in functions().items():
        service = block(body, "service_config")
        # Optional mounts: only as dynamic blocks guarded by their enable_* variable.
        assert "secret_environment_variables" not in service, f"{name}: unguarded secret mount"
        dyn = dynamic_blocks(service).get("secret_environment_variables")
        if dyn:
            content = block(dyn, "content")
            mounts[name] = (content["key"], dyn["for_each"], content)
    assert set(mounts) == {"classify_http", "on_review_labeled"}
    key, for_each, content = mounts["classify_http"]
    assert key == "API_KEY" and "var.enable_api_key" in for_each and "google_secret_manager_secret.api_key" in for_each
    key, for_each, content = mounts["on_review_labeled"]
    assert key == "FOLLOWUP_WEBHOOK_URL" and "var.enable_followup_webhook" in for_each
    assert "google_secret_manager_secret.followup_webhook_url" in for_each
    for _, (_, _, content) in mounts.items():
        assert is_ref(content["secret"], "secret_environment_variables.value")
        assert is_ref(content["version"], "var.secret_version")
    # Anywhere else a secret is referenced must be its IAM member or a depends_on.
    for rtype, found in TF["resource"].items():
        for name, body in found.items():
            for path, s in walk_strings(body):
                if "google_secret_manager_secret." not in s or rtype.startswith("google_secret_manager_secret"):
                    continue
                assert path[0] == "depends_on" or (
                    "dynamic" in path and "secret_environment_variables" in path
                ), f"{rtype}.{name} references a secret outside secret_environment_variables: {path}"
    for _, s in walk_strings(TF["locals"]):
        assert "google_secret_manager" not in s
    for name, body in TF["variable"].items():
        if body["type"] in ("string", "${string}"):
            assert not re.search(r"(api_key|webhook_url|password|token)$", name), f"secret value as variable: {name}"


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
    for name in FUNCTIONS:
        service = res("google_cloudfunctions2_function", name)["service_config"]
        service = service[0] if isinstance(service, list) else service
        assert f"local.function_model_env.{name}" in service["environment_variables"], name
        lifecycle = res("google_cloudfunctions2_function", name)["lifecycle"]
        conditions = [p["condition"] for block in lifecycle for p in block["precondition"]]
        assert any(f"local.model_fits_tier.{name}" in c for c in conditions), f"{name}: no memory check for its model"


def test_the_accurate_tier_is_sized_for_the_accurate_model() -> None:
    accurate = TF["variable"]["tiers"]["default"]["accurate"]
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
