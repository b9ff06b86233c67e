"""Decode JSON from strangers: bounded nesting and numbers, no duplicated keys, text that is real Unicode.

Why: ``json.loads`` alone turns hostile input into crashes, not rejections. Deep nesting (``[`` x 100,000) raises
RecursionError (or passes the parser and breaks whatever walks the value next), a 100,000-digit number raises a
ValueError that is not a JSONDecodeError, a duplicated key silently keeps the last value, and ``"\\ud800"`` decodes
to a string with a lone surrogate that the tokenizer cannot take. Every one of these must be the sender's 4xx or a
kept rejection, never a 500 or a retry; HTTP bodies and Pub/Sub payloads go through this one decoder.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 32  # nesting of arrays and objects; a review request needs 2, metadata a few more
MAX_NUMBER_CHARS = 100  # digits (and sign, point, exponent) in one number literal


class UntrustedJSONError(ValueError):
    """The input is not JSON we accept; the message says why, for the sender."""


def _number(literal: str) -> int | float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise UntrustedJSONError(f"a number has {len(literal)} characters; at most {MAX_NUMBER_CHARS}")
    return float(literal) if any(c in literal for c in ".eE") else int(literal)


def _constant(name: str) -> Any:
    raise UntrustedJSONError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise UntrustedJSONError(f"key {key[:40]!r} appears twice in one object")
        out[key] = value
    return out


def check_text(text: str, what: str) -> str:
    """Real Unicode (no lone surrogates), or an error naming ``what``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UntrustedJSONError(f"{what} holds a lone surrogate at character {exc.start}, not Unicode text") from None
    return text


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Like ``json.loads`` on untrusted text, but every refusal is an ``UntrustedJSONError``."""
    try:
        value = json.loads(text, parse_int=_number, parse_float=_number, parse_constant=_constant,
                           object_pairs_hook=_no_duplicates)
    except UntrustedJSONError:
        raise
    except (ValueError, RecursionError) as exc:  # the C parser bounds its own recursion
        raise UntrustedJSONError(f"not valid JSON: {str(exc)[:200]}") from None
    _check_value(value, max_depth)
    return value


def _check_value(value: Any, max_depth: int) -> None:
    """Depth bounded and every key and string real Unicode; iterative, so no input can exhaust the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, "a string")
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise UntrustedJSONError(f"JSON nests deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key in item:
                    check_text(key, "a key")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
