"""Turn the measurements into ratios, target checks, cost, a Markdown report and a plot.

Every ratio is a "gain": how many times better than the reference measured in
the same run (> 1 is better, whatever the metric's direction). In-process
variants are compared with the in-process reference, HTTP variants with the
reference served the same way, GPU variants with the reference on the GPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import compute, prices
from bench.stats import gain
from bench.texts import TextSets

# metric name -> (label, unit, higher is better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "cold_start_s": ("Cold start, fresh process to first answer (median)", "s", False),
    "latency_single_p50_ms": ("Warm latency, 1 median review, p50", "ms", False),
    "latency_single_p99_ms": ("Warm latency, 1 median review, p99", "ms", False),
    "latency_batch32_p50_ms": ("Warm latency, batch of 32, p50", "ms", False),
    "throughput_b32_rps": ("Throughput, batch 32, all threads", "reviews/s", True),
    "peak_rss_mb": ("Peak RSS after 32 long reviews", "MB", False),
    "model_file_mb": ("Model file", "MB", False),
    "dependencies_mib": ("Serving dependencies installed", "MiB", False),
}


def _get(tree: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def largest_batch(throughput: dict[str, float]) -> str | None:
    return max(throughput, key=int) if throughput else None


def all_threads_key(v: dict[str, Any]) -> str | None:
    keys = [k for k in v.get("throughput_rps", {}) if k != "threads=1"]
    return keys[0] if keys else ("threads=1" if "threads=1" in v.get("throughput_rps", {}) else None)


def metric(data: dict[str, Any], key: str, name: str) -> float | None:
    v = data["variants"].get(key)
    if v is None:
        return None
    http = v["transport"].startswith("HTTP")
    if name == "cold_start_s":
        return _num(_get(v, "cold_start_s", "total", "median"))
    if name.startswith("latency_"):
        which, stat = ("single", "p99") if "p99" in name else (("batch32" if "batch32" in name else "single"),
                                                             "median")
        return _num(_get(v, "latency_ms", which, stat))
    if name == "throughput_b32_rps":
        threads = all_threads_key(v)
        tp = v.get("throughput_rps", {}).get(threads, {}) if threads else {}
        return _num(tp.get("32") if "32" in tp else (tp.get(largest_batch(tp) or "") if tp else None))
    if name == "peak_rss_mb":
        path = ("memory_mb", "after_long_batch", "serving_process", "VmHWM") if http else (
            "memory_mb", "after_long_batch", "VmHWM")
        return _num(_get(v, *path))
    if name == "model_file_mb":
        files = data["sizes"]["model_file_mb"]
        if v.get("tier") == "accurate" and "ours_accurate" in files:  # the cascade ships both models
            return _num(files["ours_accurate"] + (files["ours_int8"] if v.get("cascade") else 0.0))
        return _num(files["reference"] if v["runtime"] == "torch" else files[f"ours_{v['precision']}"])
    if name == "dependencies_mib":
        deps = data["sizes"]["dependencies_mib"]
        side = "reference" if v["runtime"] == "torch" else "ours"
        return _num(_get(deps, f"{side}_{'http_function' if http else 'runtime'}", "mib"))
    raise KeyError(name)


def gains(data: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {}
    for key, v in data["variants"].items():
        if v["baseline"] == key or v["baseline"] not in data["variants"]:
            continue
        out[key] = {name: gain(metric(data, key, name), metric(data, v["baseline"], name), higher)
                    for name, (_, _, higher) in METRICS.items()}
    return out


def compute_bound(results: dict[str, Any], flops: dict[str, float], rates: dict[str, Any],
                  padding_efficiency: dict[str, float]) -> dict[str, Any]:
    """Throughput as a fraction of what the measured matmul rates allow, per variant and thread count."""
    bounds: dict[str, dict[str, float]] = {}
    fractions: dict[str, dict[str, float]] = {}
    for threads, rate in rates["gflops"].items():
        bounds[f"threads={threads}"] = {p: round(compute.bound(flops, rate, p), 1) for p in ("fp32", "int8")}
    for key, v in results.items():
        if v["provider"] != "cpu" or v.get("tier") == "accurate":  # the FLOPs counted are the fast model's
            continue
        for threads, tp in v.get("throughput_rps", {}).items():
            batch = "32" if "32" in tp else largest_batch(tp)
            limit = bounds.get(threads, {}).get(v.get("arithmetic", v["precision"]))
            if batch and limit:
                fractions.setdefault(key, {})[f"{threads}, batch {batch}"] = round(tp[batch] / limit, 3)
    return {"flops_per_review": flops, "matmul": rates, "bound_reviews_per_second": bounds,
            "fraction_of_bound": fractions, "padding_efficiency": padding_efficiency,
            "note": "FLOPs counted on real tokens only: padding, tokenizing and non-matmul ops count against it"}


def cost(results: dict[str, Any], sets: TextSets, tier_name: str, threads_all: int) -> dict[str, Any]:
    """USD per 1,000 reviews per variant, each priced on its own tier (the accurate tiers on ``accurate``)."""
    per: dict[str, Any] = {}
    for key in ("ours_int8_http", "reference_http", "ours_int8", "reference", "ours_cascade", "ours_accurate"):
        v = results.get(key)
        if v is None:
            continue
        name = v.get("tier") or tier_name
        tier = prices.TIERS[name]
        threads = "threads=1" if tier["vcpu"] == 1 else f"threads={min(tier['vcpu'], threads_all)}"
        tp = v.get("throughput_rps", {}).get(threads) or v.get("throughput_rps", {}).get(all_threads_key(v) or "")
        if not tp:
            continue
        batch = "32" if "32" in tp else largest_batch(tp)
        per[key] = {"tier": name, "throughput_used": f"{threads}, batch {batch}",
                    f"{batch}_reviews_per_request": prices.cloud_run_per_1000(tp[batch], tier, int(batch or 1))}
        if "1" in tp:
            per[key]["1_review_per_request"] = prices.cloud_run_per_1000(tp["1"], tier, 1)
    tier = prices.TIERS[tier_name]
    notes = [
        "LIST prices, USD, without free tiers or discounts; they change: check the sources.",
        "busy = instance billed only while computing (steady traffic); sparse = each request alone, billed "
        "at least 100 ms. Cold starts (min instances 0) add to both.",
        f"measured on {threads_all} local CPU thread(s) and applied to the tier's {tier['vcpu']} vCPU: "
        "Cloud Run vCPUs may be slower or faster than this machine's.",
    ]
    if tier_name != "http":
        notes.append("the reference needs more memory than this tier (it peaks at several hundred MB); "
                     "its cost here is a lower bound")
    return {
        "tier": {"name": tier_name, **tier},
        "prices_read_on": prices.PRICES_READ_ON,
        "cloud_run": prices.CLOUD_RUN,
        "natural_language": prices.NATURAL_LANGUAGE,
        "per_1000_reviews_usd": per,
        "natural_language_per_1000_reviews_usd": {
            "median reviews": prices.natural_language_per_1000(sets.median),
            "long reviews": prices.natural_language_per_1000(sets.long),
        },
        "notes": notes,
    }


def _cold_story(v: dict[str, Any]) -> str:
    parts = v.get("cold_start_s", {})
    names = [p for p in ("interpreter", "imports", "load", "first_inference", "server_start", "first_request")
             if p in parts]
    return ", ".join(f"{p.replace('_', ' ')} {parts[p]['median']:.2f} s" for p in names)


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with what was measured, pass/miss, and where the time goes."""
    v = data["variants"]
    g = data.get("gains", {})
    http, ours = v.get("ours_int8_http", {}), v.get("ours_int8", {})
    out: list[dict[str, Any]] = []

    def add(name: str, target: str, measured: float | str | None, ok: bool | None, why: str = "") -> None:
        out.append({"target": name, "goal": target, "measured": measured, "ok": ok, "detail": why})

    cold = metric(data, "ours_int8_http", "cold_start_s")
    add("HTTP cold start", "<= 0.8 s", cold, None if cold is None else cold <= 0.8, _cold_story(http))
    ratio = _get(g, "ours_int8_http", "cold_start_s")
    add("HTTP cold start vs reference HTTP", ">= 3x faster", ratio, None if ratio is None else ratio >= 3,
        f"reference: {_cold_story(v.get('reference_http', {}))}")
    imports = http.get("imports", {})
    hits = imports.get("forbidden_loaded")
    add("Importing the HTTP path loads no unused client", "none of " + ", ".join(imports.get("checked", [])),
        "none" if hits == [] else (", ".join(hits) if hits else None), None if hits is None else not hits,
        f"import of functions_framework + main: {imports.get('import_seconds', float('nan')):.2f} s")
    p50 = metric(data, "ours_int8_http", "latency_single_p50_ms")
    inproc = metric(data, "ours_int8", "latency_single_p50_ms")
    above = None if p50 is None or inproc is None else round(p50 - inproc, 2)
    add("HTTP warm p50, 1 median review, above in-process", "<= 1.5 ms", above, None if above is None else above <= 1.5,
        f"HTTP {p50} ms, same model in-process {inproc} ms: the difference is functions-framework, gunicorn, Flask, "
        "JSON and the keep-alive client (docs/PERFORMANCE.md)")
    http_b32, inproc_b32 = (metric(data, key, "throughput_b32_rps") for key in ("ours_int8_http", "ours_int8"))
    kept = None if not http_b32 or not inproc_b32 else round(http_b32 / inproc_b32, 3)
    add("Batch-32 throughput via HTTP / in-process", ">= 90%", kept, None if kept is None else kept >= 0.9)
    threads = all_threads_key(ours) if ours else None
    ceiling = _get(data, "compute_bound", "bound_reviews_per_second", threads or "", ours.get("arithmetic", "int8"))
    reference_b32 = metric(data, "reference", "throughput_b32_rps")
    for key, goal in (("ours_int8", "in-process"), ("ours_int8_http", "HTTP")):
        ratio = _get(g, key, "throughput_b32_rps")
        add(f"Batch-32 throughput vs reference ({goal})", ">= 3.5x", ratio, None if ratio is None else ratio >= 3.5,
            f"with {ours.get('arithmetic', 'int8')} arithmetic the bound allows {ceiling} reviews/s, "
            f"{ceiling / reference_b32:.1f}x the reference" if ceiling and reference_b32 else "")
    for key in ("ours_int8_http", "ours_int8"):
        peak = metric(data, key, "peak_rss_mb")
        add(f"Peak RSS after 32 long reviews ({key})", "<= 250 MB", peak, None if peak is None else peak <= 250,
            f"after first answer: {_get(v, key, 'memory_mb', 'after_first_answer', 'VmHWM') or _get(v, key, 'memory_mb', 'after_first_answer', 'serving_process', 'VmHWM')} MB")  # noqa: E501
        ratio = _get(g, key, "peak_rss_mb")
        add(f"Peak RSS vs reference ({key})", ">= 2.5x lower", ratio, None if ratio is None else ratio >= 2.5)
    ratio = _get(g, "ours_int8", "dependencies_mib")
    add("Serving dependencies vs torch + transformers", ">= 4x smaller", ratio, None if ratio is None else ratio >= 4)
    agree = _get(data, "agreement", "pairs", "ours_int8 vs ours_fp32", "all")
    pair = _get(data, "agreement", "pairs", "ours_int8 vs ours_fp32") or {}
    add("int8 agrees with fp32", ">= 99% of labels", agree, None if agree is None else agree >= 0.99,
        f"{pair.get('disagreements')} of {_get(data, 'agreement', 'texts')} texts differ" if pair else "")
    arith = ours.get("arithmetic", "int8")
    frac = _get(data, "compute_bound", "fraction_of_bound", "ours_int8", f"{threads}, batch 32")
    add(f"Shipped artifact batch-32 throughput / {arith} compute bound", ">= 70%", frac,
        None if frac is None else frac >= 0.7,
        (f"int8_weights computes in fp32 (the same answer on every CPU); int8 arithmetic would be bounded at "
         f"{_get(data, 'compute_bound', 'bound_reviews_per_second', threads or '', 'int8')} reviews/s but answers "
         "differently per instruction set (tools/quantize.py)" if arith == "fp32" else "")
        + "; every window runs alone and unpadded: the bound's matmul has 32 windows' rows, one window's has ~124, "
        "and padded batches measured no faster (bench/batching.py)")
    return out


def _fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit in ("s",):
        return f"{value:.2f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def _cell(data: dict[str, Any], key: str, name: str) -> str:
    value = metric(data, key, name)
    text = _fmt(value, METRICS[name][1])
    ratio = _get(data, "gains", key, name)
    return f"{text} (×{ratio:.1f})" if ratio is not None else text


def markdown(data: dict[str, Any]) -> str:
    meta, v = data["meta"], data["variants"]
    keys = list(v)
    lines = [
        "# reviewsense benchmark",
        "",
        f"{meta['date']} · mode **{meta['mode']}** · {meta['machine']['cpu']} (kernel family "
        f"{meta['machine'].get('kernel_family', 'not recorded')}), {meta['machine']['cpus']} CPU "
        f"threads, {meta['machine']['memory_gb']} GB · load average {meta['machine']['load_average_at_start']} "
        f"at start, {meta['machine'].get('load_average_at_end')} at end · int8 artifact "
        f"{meta['int8_artifact']['version']}",
        "",
        "(×N) = N times better than the reference measured in the same run (in-process vs in-process, "
        "HTTP vs HTTP).",
        "",
        "| Metric | " + " | ".join(v[k]["title"] for k in keys) + " |",
        "|---|" + "---:|" * len(keys),
    ]
    for name, (label, unit, _) in METRICS.items():
        lines.append(f"| {label} ({unit}) | " + " | ".join(_cell(data, k, name) for k in keys) + " |")
    lines.append("| Cold start spread, min–max (s) | " + " | ".join(
        f"{_get(v[k], 'cold_start_s', 'total', 'min'):.2f}–{_get(v[k], 'cold_start_s', 'total', 'max'):.2f} "
        f"(n={_get(v[k], 'cold_start_s', 'total', 'n')})" for k in keys) + " |")
    lines.append("| Cold start, where the time goes (medians) | " + " | ".join(
        _cold_story(v[k]).replace(", ", "<br>") for k in keys) + " |")
    threads_rows: dict[str, None] = {}
    for k in keys:
        for threads, tp in v[k].get("throughput_rps", {}).items():
            for batch in tp:
                threads_rows[f"{threads}|{batch}"] = None
    def ratio_row(label: str, read: Any, higher: bool) -> str:
        cells = []
        for k in keys:
            value, base = _num(read(v[k])), _num(read(v.get(v[k]["baseline"], {})))
            ratio = gain(value, base, higher) if v[k]["baseline"] != k else None
            cells.append(_fmt(value) + (f" (×{ratio:.1f})" if ratio is not None else ""))
        return f"| {label} | " + " | ".join(cells) + " |"

    for key in sorted(threads_rows, key=lambda r: (r.split("|")[0] != "threads=1", int(r.split("|")[1]))):
        threads, batch = key.split("|")
        lines.append(ratio_row(f"Throughput, batch {batch}, {threads} (reviews/s)",
                         lambda x, t=threads, b=batch: _get(x, "throughput_rps", t, b), True))
    lines.append(ratio_row("RSS after first answer, peak (MB)",
                     lambda x: _get(x, "memory_mb", "after_first_answer", "VmHWM")
                     or _get(x, "memory_mb", "after_first_answer", "serving_process", "VmHWM"), False))
    lines.append(ratio_row("Batch of 32 long reviews (s)", lambda x: x.get("long_batch_seconds"), False))

    lines += ["", "## Targets", "", "| Target | Goal | Measured | Met | Where the time goes |",
              "|---|---|---:|:-:|---|"]
    for t in data["targets"]:
        measured = t["measured"]
        shown = f"{measured:.3g}" if isinstance(measured, float) else str(measured if measured is not None else "–")
        met = {True: "yes", False: "**no**", None: "–"}[t["ok"]]
        lines.append(f"| {t['target']} | {t['goal']} | {shown} | {met} | {t['detail']} |")

    agreement = data["agreement"]
    lines += ["", "## Label agreement", "",
              f"On {agreement['texts']} texts ({agreement['texts_read_whole_by_all']} of them short enough, "
              f"≤ {agreement['whole_text_budget_tokens']} tokens, that every variant reads them whole; longer ones "
              "the reference truncates while ours reads them in windows).", "",
              "| Pair | All texts | Texts read whole | Disagreements |", "|---|---:|---:|---:|"]
    for pair, row in agreement["pairs"].items():
        whole = "–" if row["read_whole"] is None else f"{row['read_whole']:.2%}"
        lines.append(f"| {pair} | {row['all']:.2%} | {whole} | {row['disagreements']} |")

    deps = data["sizes"]["dependencies_mib"]
    lines += ["", "## Size", "", "| What | MiB | Distributions | Largest |", "|---|---:|---:|---|"]
    for name, row in deps.items():
        largest = ", ".join(f"{k} {val:.0f}" for k, val in list(row["largest_mib"].items())[:4])
        lines.append(f"| {name}: {row['asked']} | {row['mib']:.0f} | {row['distributions']} | {largest} |")
    files = data["sizes"]["model_file_mb"]
    lines.append("")
    lines.append(f"Model files: reference safetensors {files['reference']:.1f} MB, ours fp32 ONNX "
                 f"{files['ours_fp32']:.1f} MB, ours int8 ONNX {files['ours_int8']:.1f} MB"
                 + (f", accurate tier int8 ONNX {files['ours_accurate']:.1f} MB." if "ours_accurate" in files
                    else "."))

    cb = data["compute_bound"]
    flops = cb["flops_per_review"]
    lines += ["", "## Compute bound", "",
              f"FLOPs per review at the median length ({flops['tokens']} tokens): {flops['total'] / 1e9:.2f} GFLOP "
              f"({flops['linear'] / 1e9:.2f} in linear layers, {flops['attention'] / 1e9:.2f} in attention). "
              f"Matmul rates ({cb['matmul']['method']}, {cb['matmul']['shape']}): " + "; ".join(
                  f"{t} thread(s): fp32 {r['fp32']} GFLOP/s, int8 {r['int8']} GFLOP/s"
                  for t, r in cb["matmul"]["gflops"].items()) + ".", "",
              "| Variant | Threads, batch | Fraction of the bound |", "|---|---|---:|"]
    for key, rows in cb["fraction_of_bound"].items():
        for where, frac in rows.items():
            lines.append(f"| {key} | {where} | {frac:.0%} |")
    lines.append("")
    lines.append(f"Bound (reviews/s): {cb['bound_reviews_per_second']}; padding efficiency of the measured "
                 f"batches: {cb['padding_efficiency']}. {cb['note']}.")

    cost_ = data["cost"]
    tier = cost_["tier"]
    lines += ["", f"## Cost per 1,000 reviews (Cloud Run tier '{tier['name']}': {tier['vcpu']} vCPU, "
              f"{tier['memory_gib']} GiB)", "",
              "| Variant | Tier | Throughput used | Batched requests, busy / sparse (USD) | One review per request, "
              "busy / sparse (USD) |", "|---|---|---|---:|---:|"]
    for key, row in cost_["per_1000_reviews_usd"].items():
        batched = next((val for name, val in row.items() if name.endswith("reviews_per_request")), None)
        single = row.get("1_review_per_request")
        lines.append(f"| {key} | {row.get('tier', tier['name'])} | {row['throughput_used']} | "
                     + (f"{batched['busy']:.4f} / {batched['sparse']:.4f}" if batched else "–") + " | "
                     + (f"{single['busy']:.4f} / {single['sparse']:.4f}" if single else "–") + " |")
    nl = cost_["natural_language_per_1000_reviews_usd"]
    cr = cost_["cloud_run"]
    lines += ["", f"Managed alternative: Cloud Natural Language API sentiment analysis, "
              f"{cost_['natural_language']['usd_per_1000_units']:.2f} USD per 1,000 units of 1,000 characters: "
              f"{nl['median reviews']:.2f} USD per 1,000 median reviews, {nl['long reviews']:.2f} USD per 1,000 long "
              "reviews.", "",
              f"Prices read on {cost_['prices_read_on']}: Cloud Run {cr['usd_per_vcpu_second']} USD/vCPU-s, "
              f"{cr['usd_per_gib_second']} USD/GiB-s, {cr['usd_per_million_requests']} USD per million requests "
              f"({cr['what']}; {cr['source']}); Natural Language ({cost_['natural_language']['source']}). "
              + " ".join(cost_["notes"])]

    notes = list(meta.get("notes", []))
    if data.get("failures"):
        notes += [f"FAILED {k}: {msg}" for k, msg in data["failures"].items()]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    lines += ["", "Method: bench/README.md. Raw figures: latest.json.", ""]
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    """Cold start, p50 latency, batch-32 throughput and peak RSS side by side, gains on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in data["variants"] if data["variants"][k]["provider"] == "cpu"]
    titles = {"reference": "reference", "ours_fp32": "ours fp32", "ours_int8": "ours int8",
              "reference_http": "reference\nHTTP", "ours_int8_http": "ours int8\nHTTP",
              "ours_accurate": "ours\naccurate", "ours_cascade": "ours\ncascade"}
    colors = {"reference": "#9e9e9e", "reference_http": "#616161", "ours_fp32": "#90caf9", "ours_int8": "#1e88e5",
              "ours_int8_http": "#0d47a1", "ours_accurate": "#7e57c2", "ours_cascade": "#b39ddb"}
    panels = [("cold_start_s", "Cold start (s)"), ("latency_single_p50_ms", "p50 latency, 1 review (ms)"),
              ("throughput_b32_rps", "Throughput, batch 32 (reviews/s)"),
              ("peak_rss_mb", "Peak RSS after 32 long reviews (MB)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2))
    for ax, (name, title) in zip(axes, panels, strict=True):
        values = [metric(data, k, name) or 0.0 for k in keys]
        bars = ax.bar([titles.get(k, k) for k in keys], values, color=[colors.get(k, "#42a5f5") for k in keys])
        for bar, key, value in zip(bars, keys, values, strict=True):
            ratio = _get(data, "gains", key, name)
            label = _fmt(value, METRICS[name][1]) + (f"\n×{ratio:.1f}" if ratio else "")
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                        fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
        ax.margins(y=0.25)
        ax.spines[["top", "right"]].set_visible(False)
    meta = data["meta"]
    fig.suptitle(f"reviewsense vs transformers pipeline · {meta['machine']['cpus']} CPU threads · "
                 f"{meta['mode']} run {meta['date'][:10]} · ×N = N times better than the reference", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
