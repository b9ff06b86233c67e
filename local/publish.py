"""Publish reviews to the ingestion topic of the running local stack.

    python -m local.publish --text "Broke after two days" [--id ID] [--customer C] [--source S]
    python -m local.publish --file reviews.jsonl

Why a CLI of its own: the stack keeps running so people can try their own reviews, and
this is how they reach it without gcloud or a client library. It finds the stack through
the state file the stack writes (``build/local/stack.json``), so nothing is configured twice.

A JSONL file is published line by line, as is: a line that is not a valid review is
published anyway and the ingestion function rejects it (that is what it is for). Lines
with an ``expect`` key are bundled samples (``local/samples.jsonl``): their ``payload``
(an object), ``raw`` (text, published unchanged) or ``raw_base64`` (bytes) is what is
published, and ``"oversize": true`` makes the text one longer than ``MAX_REVIEW_CHARS``
at publish time, so the file stays small.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.emulators import EmulatorError, PubSubEmulator, process_alive
from shared.config import PROJECT_ROOT, get_settings, names

DEFAULT_STATE = PROJECT_ROOT / "build" / "local" / "stack.json"
EXPECTATIONS = ("labeled", "rejected")


class PublishError(RuntimeError):
    """Something the user must fix (no stack running, an unreadable file); the message says what."""


@dataclass(frozen=True)
class Entry:
    """One message to publish, and for a bundled sample what it should end as."""

    line: int
    data: bytes
    attributes: dict[str, str]
    review_id: str | None = None
    text: str | None = None
    case: str | None = None
    expect: str | None = None  # labeled | rejected (samples only)
    reason_code: str | None = None  # for an expected rejection
    followup: bool = False  # a clearly negative sample: must open a follow-up
    phase: int = 1  # samples of phase 2 are published once phase 1 has settled (edits)

    @property
    def is_sample(self) -> bool:
        return self.expect is not None

    def message(self) -> dict[str, Any]:
        return {"data": self.data, "attributes": self.attributes}


def _fields(payload: object) -> tuple[str | None, str | None]:
    if not isinstance(payload, dict):
        return None, None
    review_id, text = payload.get("review_id"), payload.get("text")
    return (review_id if isinstance(review_id, str) else None), (text if isinstance(text, str) else None)


def oversize_text(max_chars: int) -> str:
    sentence = "This review goes on and on about the same parcel. "
    return (sentence * (max_chars // len(sentence) + 2))[:max_chars + 1]


def _sample(number: int, item: dict[str, Any], max_chars: int, where: str) -> Entry:
    expect = item.get("expect")
    if expect not in EXPECTATIONS:
        raise PublishError(f"{where}: expect must be one of {', '.join(EXPECTATIONS)}")
    sources = [key for key in ("payload", "raw", "raw_base64") if key in item]
    if len(sources) != 1:
        raise PublishError(f"{where}: a sample needs exactly one of payload, raw, raw_base64")
    case = str(item.get("case") or f"line-{number}")
    payload = item.get("payload")
    if sources == ["payload"]:
        if not isinstance(payload, dict):
            raise PublishError(f"{where}: payload must be an object")
        if item.get("oversize"):
            payload = {**payload, "text": oversize_text(max_chars)}
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    elif sources == ["raw"]:
        data = str(item["raw"]).encode("utf-8")
    else:
        try:
            data = base64.b64decode(str(item["raw_base64"]), validate=True)
        except (binascii.Error, ValueError):
            raise PublishError(f"{where}: raw_base64 is not base64") from None
    review_id, text = _fields(payload)
    return Entry(line=number, data=data, attributes={"sample": case}, review_id=review_id, text=text, case=case,
                 expect=expect, reason_code=item.get("reason_code"), followup=bool(item.get("followup")),
                 phase=int(item.get("phase") or 1))


def read_jsonl(path: Path, max_chars: int | None = None) -> list[Entry]:
    """The messages of a JSONL file, in order (blank lines skipped)."""
    max_chars = max_chars or get_settings().max_review_chars
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise PublishError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PublishError(f"{path} is not UTF-8 text") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            item = None
        if isinstance(item, dict) and "expect" in item:
            entries.append(_sample(number, item, max_chars, f"{path}:{number}"))
        else:
            review_id, text = _fields(item)
            entries.append(Entry(line=number, data=line.encode("utf-8"), attributes={"origin": "local-publish"},
                                 review_id=review_id, text=text))
    return entries


def review_entry(text: str, review_id: str | None = None, customer_id: str | None = None,
                 source: str | None = None) -> Entry:
    """One review typed on the command line; a review id is made up when none is given."""
    payload: dict[str, Any] = {"review_id": review_id or f"cli-{uuid.uuid4().hex[:12]}", "text": text}
    if customer_id:
        payload["customer_id"] = customer_id
    payload["source"] = source or "cli"
    return Entry(line=0, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                 attributes={"origin": "local-publish"}, review_id=payload["review_id"], text=text)


def publish(pubsub: PubSubEmulator, entries: list[Entry], topic: str | None = None) -> list[str]:
    """Publish entries in order; returns their message ids."""
    return pubsub.publish(topic or names()["ingest_topic"], [entry.message() for entry in entries])


# --- finding the running stack -----------------------------------------------------------------

def load_state(path: Path = DEFAULT_STATE) -> dict[str, Any]:
    """The running stack's state file; a clear error when there is no running stack."""
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PublishError(f"no local stack is running ({path} is missing): start one with `make run` "
                           "in another terminal") from None
    except (OSError, ValueError) as exc:
        raise PublishError(f"cannot read the stack state {path} ({exc}); restart the stack with `make run`") from None
    pid = state.get("pid")
    if not isinstance(pid, int) or not process_alive(pid):
        raise PublishError(f"no local stack is running ({path} was left by process {pid}, which has exited): "
                           "start one with `make run`")
    if state.get("phase") == "starting":
        raise PublishError("the local stack is still starting; try again in a few seconds")
    return state


def connect(state: dict[str, Any]) -> PubSubEmulator:
    """A client for the stack's Pub/Sub emulator (REST; starts nothing)."""
    host, _, port = str(state["pubsub"]).rpartition(":")
    return PubSubEmulator(project=state["project"], host=host, port=int(port), log_dir=state["log_dir"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.publish", description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="the review text")
    what.add_argument("--file", type=Path, help="a JSONL file of reviews (or the bundled samples)")
    parser.add_argument("--id", dest="review_id", help="review id (default: a new one, cli-...)")
    parser.add_argument("--customer", help="customer id")
    parser.add_argument("--source", help="where the review came from (default: cli)")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="the stack's state file")
    args = parser.parse_args(argv)
    try:
        state = load_state(args.state)
        if args.file is not None:
            entries = read_jsonl(args.file)
            if not entries:
                raise PublishError(f"{args.file} holds no lines to publish")
        else:
            entries = [review_entry(args.text, args.review_id, args.customer, args.source)]
        ids = publish(connect(state), entries, state["topics"]["ingest"])
    except (PublishError, EmulatorError) as exc:
        print(f"publish: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # connection refused and the like: the stack went away
        print(f"publish: the local stack's Pub/Sub emulator did not answer ({exc}); is `make run` still running?",
              file=sys.stderr)
        return 1
    topic = state["topics"]["ingest"]
    if args.file is None:
        print(f"published review {entries[0].review_id} as message {ids[0]} to {topic}")
    else:
        print(f"published {len(ids)} message(s) from {args.file} to {topic} (message ids {ids[0]}..{ids[-1]})")
    print(f"the stack's terminal shows each one as it is labeled or rejected (logs: {state['log_dir']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
