"""The side-by-side benchmark of reviewsense against a ``transformers`` pipeline (not deployed; see README.md)."""
