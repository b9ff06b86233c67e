"""Installed size of dependency sets, measured from the installed packages' RECORD files.

Method: for each named distribution, follow its requirements (markers evaluated
for this interpreter, no extras) to the full closure of what pip installs with
it, then add up the size of every file each distribution's RECORD lists (stat()
where RECORD gives no size), counting a file once even if two sets share it.
That is what ``pip install`` of those names puts on disk, read from the
environment the benchmark runs in (the dev virtualenv, which holds both the
serving stack and torch + transformers). Nothing is downloaded.

Caveat, stated in the report: torch here is the CPU-only wheel; a plain
``pip install torch`` on Linux pulls the CUDA build and several GB more, so the
reference's figure is a lower bound.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

MIB = 1024 * 1024

# The sets compared. "runtime" sets are what classifying needs; "served" adds the HTTP layer.
SETS: dict[str, list[str]] = {
    "ours_runtime": ["onnxruntime", "tokenizers", "numpy"],
    "ours_http_function": ["functions-framework", "onnxruntime", "tokenizers", "numpy"],
    "reference_runtime": ["torch", "transformers"],
    "reference_http_function": ["functions-framework", "torch", "transformers"],
}


def closure(names: list[str]) -> tuple[list[str], list[str]]:
    """Installed distributions ``names`` pull in (sorted), and requirements not installed here."""
    seen: dict[str, metadata.Distribution] = {}
    missing: list[str] = []
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        seen[name] = dist
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return sorted(seen), sorted(set(missing))


def files_of(name: str) -> dict[Path, int]:
    """Every file a distribution installed, with its size."""
    dist = metadata.distribution(name)
    out: dict[Path, int] = {}
    for entry in dist.files or []:
        path = Path(os.path.normpath(str(entry.locate())))
        size = entry.size
        if size is None:
            try:
                size = path.stat().st_size
            except OSError:
                continue
        out[path] = int(size)
    return out


def measure(names: list[str], asked: str | None = None) -> dict[str, object]:
    dists, missing = closure(names)
    files: dict[Path, int] = {}
    per_dist: dict[str, float] = {}
    for dist in dists:
        own = files_of(dist)
        per_dist[dist] = round(sum(own.values()) / MIB, 1)
        files.update(own)
    largest = sorted(per_dist.items(), key=lambda kv: -kv[1])[:6]
    return {"asked": asked or " + ".join(names), "distributions": len(dists),
            "mib": round(sum(files.values()) / MIB, 1), "largest_mib": dict(largest), "not_installed": missing}


def requirements_names(path: Path) -> list[str]:
    """Top-level names pinned in a requirements file (``-r`` lines and comments skipped)."""
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.append(re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0])
    return names


def report(requirements: Path | None = None) -> dict[str, object]:
    out: dict[str, object] = {name: measure(names) for name, names in SETS.items()}
    if requirements is not None and requirements.is_file():
        out["ours_all_serving_requirements"] = measure(requirements_names(requirements),
                                                       f"everything in {requirements.name}")
    return out
