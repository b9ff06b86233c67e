"""Cloud Functions entry points, re-exported from ``functions/``; nothing else lives here.

Importing this module loads no model and opens no client: each function pays
for what it uses on its first call, once per instance.
"""

from functions.classify_http import classify_http
from functions.ingest_review import ingest_review
from functions.on_review_labeled import on_review_labeled

__all__ = ["classify_http", "ingest_review", "on_review_labeled"]
