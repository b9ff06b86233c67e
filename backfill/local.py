"""``make backfill`` / ``make relabel``: the pipeline on the DirectRunner against the running ``make run``.

Finds the local stack's Firestore emulator and project in its state file (as ``make publish``
does), so nothing is configured twice, and runs Beam's DirectRunner with one worker process
per core (``multi_processing``: each loads the model once).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from backfill import pipeline

STATE = Path(__file__).resolve().parents[1] / "build" / "local" / "stack.json"


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "FIRESTORE_EMULATOR_HOST" not in os.environ:
        try:
            state = json.loads(STATE.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            print(f"backfill: no local stack is running ({STATE} is missing): start one with `make run`, or set "
                  "FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT", file=sys.stderr)
            return 2
        os.environ["FIRESTORE_EMULATOR_HOST"] = state["firestore"]
        os.environ["GOOGLE_CLOUD_PROJECT"] = state["project"]
    if not any(a.startswith("--runner") for a in args):
        args += ["--runner", "DirectRunner", "--direct_running_mode", "multi_processing",
                 f"--direct_num_workers={os.cpu_count() or 1}"]
    return pipeline.main(args)


if __name__ == "__main__":
    sys.exit(main())
