"""``make reliability``: the storm, fault and fuzz scenarios against the real emulators and the served functions.

    python -m reliability.run [--scale 1.0] [--out RELIABILITY.md]

Brings up the local stack (``local.services``: both emulators, the three functions on
functions-framework/gunicorn, Terraform's delivery settings through the push relay), loopback
only, then runs, in order: a storm of new reviews, duplicates and replays, edits, a restart of
``ingest_review`` mid-storm, poison messages, the follow-ups all that caused (one each, one
notification each), hostile HTTP requests, and load at concurrency 1, 4 and 16. Writes the
figures to ``RELIABILITY.md`` and ``build/reliability/results.json``; exits 1 if anything was
lost, written twice, wrongly dead-lettered or rejected, or any fuzz case was not a 4xx JSON error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from local.emulators import DEFAULT_PROJECT, free_port
from local.services import Stack, view_subscription
from reliability.http_checks import fuzz, load
from reliability.observe import Observed, Observer
from reliability.pubsub_scenarios import PubSubResult, PubSubScenarios
from reliability.report import render
from shared.config import PROJECT_ROOT, load_settings, names
from shared.followup_rule import Action, decide

OUT_DIR = PROJECT_ROOT / "build" / "reliability"


def corpus_texts() -> list[str]:
    texts = []
    for split in ("eval", "dev"):
        for line in (PROJECT_ROOT / "data" / "reviews" / "splits" / f"{split}.jsonl").read_text().splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


def followups(observer: Observer, scenarios: PubSubScenarios, prefixes: tuple[str, ...]) -> dict[str, Any]:
    """Every review the rule says needs a follow-up has exactly one, and each open one notified exactly once."""
    settings = scenarios.stack.settings

    def due(seen: Observed) -> dict[str, Action]:
        return {rid: action for rid, review in seen.reviews.items() if rid.startswith(prefixes)
                and (action := decide(None, review, settings).action) in (Action.OPEN, Action.NEEDS_REVIEW)}

    def settled(seen: Observed) -> bool:
        wanted = due(seen)
        return all(rid in seen.followups and (action is not Action.OPEN
                                              or "pubsub" in (seen.followups[rid].get("notifications") or {}))
                   for rid, action in wanted.items())

    started = time.monotonic()
    seen, _ = scenarios.wait(settled)
    wanted = due(seen)
    messages = Counter((m.get("attributes") or {}).get("notification_id") for m in seen.followup_messages
                       if str((m.get("attributes") or {}).get("review_id", "")).startswith(prefixes))
    opened = [rid for rid, action in wanted.items() if action is Action.OPEN]
    return {"reviews_needing_one": len(wanted), "open": len(opened),
            "needs_review": len(wanted) - len(opened),
            "missing": sum(1 for rid in wanted if rid not in seen.followups),
            "extra": sum(1 for rid in seen.followups if rid.startswith(prefixes) and rid not in wanted),
            "notifications": sum(messages.values()),
            "not_notified": sum(1 for rid in opened
                                if "pubsub" not in (seen.followups.get(rid, {}).get("notifications") or {})),
            "notified_twice": sum(1 for count in messages.values() if count > 1),
            "settle_seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's message count")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "RELIABILITY.md")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds each scenario may take to settle")
    args = parser.parse_args(argv)

    def size(n: int) -> int:
        return max(4, int(n * args.scale))

    console = Console(highlight=False)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stack = Stack(project=DEFAULT_PROJECT, http_port=free_port(), log_dir=OUT_DIR / "logs",
                  state_path=OUT_DIR / "stack.json", startup_timeout=180.0, settings=load_settings(), console=console)
    observer: Observer | None = None
    started_at = datetime.now(UTC)
    try:
        stack.start()
        n = names()
        assert stack.pubsub is not None and stack.firestore is not None
        ingest = stack.functions[n["functions"]["ingest_review"]]
        observer = Observer(stack.pubsub, stack.firestore.address, stack.project, stack.settings,
                            n["dead_letter_subscription"], view_subscription(stack.settings.followup_topic), ingest)
        scenarios = PubSubScenarios(stack, observer, corpus_texts(), args.timeout)
        pubsub: list[PubSubResult] = []
        runs: list[tuple[str, Callable[[], PubSubResult]]] = [
            ("storm", lambda: scenarios.storm(size(300))), ("duplicates", lambda: scenarios.duplicates(size(100))),
            ("edits", lambda: scenarios.edits(size(60))), ("restart", lambda: scenarios.restart(size(300))),
            ("poison", scenarios.poison)]
        for name, run in runs:
            console.print(f"  scenario {name} ...")
            pubsub.append(run())
            console.print(f"    {pubsub[-1].as_dict()}")
        console.print("  follow-ups ...")
        follow = followups(observer, scenarios, ("storm-", "dup-", "restart-"))
        console.print(f"    {follow}")
        http = stack.functions[n["functions"]["classify_http"]]
        console.print("  fuzz ...")
        fuzzed = fuzz(http)
        console.print("  load ...")
        loads = [load(http, level, size(60)) for level in (1, 4, 16)]
    finally:
        if observer is not None:
            observer.close()
        stack.stop()
    results = {"started_at": started_at.isoformat(timespec="seconds"), "scale": args.scale,
               "pubsub": [r.as_dict() for r in pubsub], "followups": follow,
               "fuzz": [f.as_dict() for f in fuzzed], "load": [r.as_dict() for r in loads],
               "settings": {key: n[key] for key in ("ack_deadline_seconds", "max_delivery_attempts",
                                                    "min_retry_backoff_seconds", "max_retry_backoff_seconds")}}
    (OUT_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    args.out.write_text(render(results))
    clean = (all(r.clean for r in pubsub) and all(f.ok for f in fuzzed)
             and follow["missing"] == follow["extra"] == follow["not_notified"] == follow["notified_twice"] == 0)
    console.print(f"{'clean' if clean else 'NOT CLEAN'}: {args.out}")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
