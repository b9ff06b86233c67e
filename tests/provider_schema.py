"""The google provider's resource / data-source schema, read offline from the jsii
assembly that ships in the PyPI package ``cdktn-provider-google`` (CDK Terrain
bindings generated from the provider's own schema).

The package is never imported (that needs node and is slow): only its
``_jsii/provider-google@<version>.jsii.tgz`` is read; ``package/.jsii`` in it is a
JSON document of every generated type. How it maps to Terraform:

* a resource / data source (the provider: ``GoogleProvider``) is a class whose base is ``cdktn.TerraformResource`` /
  ``cdktn.TerraformDataSource`` (``cdktn.TerraformProvider``); its docs summary names the Terraform type, e.g.
  ``Represents a {@link https://registry.terraform.io/providers/hashicorp/google/8.7.0/docs/resources/pubsub_topic
  google_pubsub_topic}.``
  (the static ``tfResourceType`` constant has no value in the assembly);
* its initializer's ``config`` parameter is the ``<Class>Config`` struct whose
  properties are the arguments; a property with ``optional`` unset is required;
* the Terraform name of a property is the anchor of its registry link in the docs,
  e.g. ``buildConfig`` -> ``...#build_config``, ``buildAttribute`` -> ``#build``
  (camelCase -> snake_case only where a link is missing: it gets digits wrong);
* a property typed as a struct is a block that may appear at most once, one typed
  ``IResolvable | array<struct>`` a repeatable block; every other property is an
  attribute (``string``, ``number``, ``boolean | IResolvable``, ``array<string>``,
  ``array<number>``, ``map<string>``).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PACKAGE = "cdktn_provider_google"
_PREFIX = "@cdktn/provider-google."
_TYPE_LINK = re.compile(
    r"\{@link https://registry\.terraform\.io/providers/hashicorp/google/([^/]+)/docs/"
    r"(resources|data-sources)/\S+ (\w+)\}"
)
_ATTR_LINK = re.compile(r"registry\.terraform\.io/providers/[^\s#]+#(\w+)")


@dataclass(frozen=True)
class Field:
    """One argument of a resource or block: an attribute, or a nested block."""

    kind: Literal["attribute", "block"]
    required: bool
    type: str  # attribute: string|number|bool|list(string)|list(number)|map(string); block: block|list(block)
    nested: dict[str, Field] = field(default_factory=dict, repr=False)  # the block's own arguments

    @property
    def single(self) -> bool:
        """A block that may appear at most once (max_items = 1)."""
        return self.type == "block"


Body = dict[str, Field]


@dataclass(frozen=True)
class ProviderSchema:
    version: str  # the provider version the bindings were generated from
    provider: Body  # the `provider "google"` block
    resources: dict[str, Body]
    data_sources: dict[str, Body]


def assembly_path() -> Path | None:
    """The installed .jsii.tgz, or None when the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)  # a top-level package: found without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations)), "_jsii").glob("*.jsii.tgz"))
    return found[-1] if found else None


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


def _tf_name(prop: dict[str, Any]) -> str:
    anchors = _ATTR_LINK.findall(json.dumps(prop.get("docs", {})))
    return str(anchors[-1]) if anchors else _snake(prop["name"])


def _attr_type(t: dict[str, Any]) -> str:
    if "union" in t:  # `boolean | IResolvable`: IResolvable is any expression
        others = [u for u in t["union"]["types"] if u.get("fqn") != "cdktn.IResolvable"]
        return _attr_type(others[0]) if len(others) == 1 else "any"
    if "primitive" in t:
        return {"boolean": "bool", "string": "string", "number": "number"}.get(t["primitive"], "any")
    if "collection" in t:
        inner = _attr_type(t["collection"]["elementtype"])
        return f"map({inner})" if t["collection"]["kind"] == "map" else f"list({inner})"
    return "any"


def _struct_of(t: dict[str, Any]) -> tuple[str, bool] | None:
    """(struct fqn, repeatable) when the property type is a nested block."""
    if str(t.get("fqn", "")).startswith(_PREFIX):
        return t["fqn"], False
    for u in t.get("union", {}).get("types", []):
        coll = u.get("collection", {})
        if coll.get("kind") == "array" and str(coll["elementtype"].get("fqn", "")).startswith(_PREFIX):
            return coll["elementtype"]["fqn"], True
    return None


def _body(types: dict[str, Any], fqn: str, memo: dict[str, Body]) -> Body:
    if fqn in memo:
        return memo[fqn]
    body: Body = {}
    memo[fqn] = body  # filled in place: a (hypothetical) cycle ends here
    for prop in types[fqn].get("properties", []):
        required = not prop.get("optional", False)
        struct = _struct_of(prop["type"])
        if struct is None:
            body[_tf_name(prop)] = Field("attribute", required, _attr_type(prop["type"]))
        else:
            nested = _body(types, struct[0], memo)
            body[_tf_name(prop)] = Field("block", required, "list(block)" if struct[1] else "block", nested)
    return body


def parse_assembly(assembly: dict[str, Any]) -> ProviderSchema:
    types: dict[str, Any] = assembly["types"]
    memo: dict[str, Body] = {}
    out: dict[str, dict[str, Body]] = {"resources": {}, "data-sources": {}}
    version, provider = "", Body()
    for cls in types.values():
        base = cls.get("base") if cls["kind"] == "class" else None
        if base not in ("cdktn.TerraformResource", "cdktn.TerraformDataSource", "cdktn.TerraformProvider"):
            continue
        (config,) = [p for p in cls["initializer"]["parameters"] if p["name"] == "config"]
        body = _body(types, config["type"]["fqn"], memo)
        if base == "cdktn.TerraformProvider":
            provider = body
            continue
        link = _TYPE_LINK.search(cls.get("docs", {}).get("summary", ""))
        assert link, f"no registry link naming the terraform type in {cls['fqn']}"
        version, kind, tf_type = link.groups()
        out[kind][tf_type] = body
    return ProviderSchema(version, provider, out["resources"], out["data-sources"])


@functools.cache
def load_schema(path: Path | None = None) -> ProviderSchema:
    path = path or assembly_path()
    if path is None:
        raise FileNotFoundError(f"{PACKAGE} is not installed (pip install -r requirements-dev.txt)")
    with tarfile.open(path, "r:gz") as tgz:
        member = tgz.extractfile("package/.jsii")
        assert member is not None, f"no package/.jsii in {path}"
        assembly = json.load(member)
    return parse_assembly(assembly)
