"""Importing the entry points must stay cheap: no model, no torch, no cloud clients.

Why: Cloud Functions imports main.py on every cold start; anything heavy
there is paid by every instance, including the ones that never need it.
"""

from __future__ import annotations

import json
import subprocess
import sys

from shared.config import PROJECT_ROOT

PROBE = """
import json, sys
import main
from shared import classifier
heavy = ["torch", "transformers", "onnxruntime", "tokenizers", "google.cloud.firestore", "google.cloud.pubsub"]
print(json.dumps({"loaded": classifier.is_loaded(), "heavy": [m for m in heavy if m in sys.modules],
                  "entry_points": sorted(main.__all__)}))
"""


def test_importing_main_loads_nothing_heavy() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         check=True, timeout=120)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["loaded"] is False
    assert report["heavy"] == []
    assert "classify_http" in report["entry_points"]
