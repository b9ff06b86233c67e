"""The one Firestore layer: the process-wide client, call options, and the read-decide-write loop.

Why one loop for everything: a review label, a follow-up's state and a notification claim are
all "read the document, decide on what it says, write only if nobody wrote since". A write is
either ``create()`` (fails with AlreadyExists if a concurrent delivery got there first) or an
``update()`` with a precondition on the ``update_time`` we read (fails with FailedPrecondition
if anything wrote in between). Either failure means: read again and decide again.

Why not transactions: the Firestore emulator (and production, under contention) makes a
losing transaction wait and retry; a precondition fails at once and costs one more read.

Every call has a deadline (``FIRESTORE_TIMEOUT_SECONDS``, retries included) and the loop
stops after ``MAX_ROUNDS`` rounds or three call timeouts, so an unreachable or contended
Firestore fails the delivery (it is retried by the platform) instead of hanging it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from shared.config import get_settings
from shared.errors import ContentionError
from shared.process_wide import ProcessWide

if TYPE_CHECKING:
    from google.cloud.firestore import Client, DocumentReference, DocumentSnapshot

    Snapshot = DocumentSnapshot[DocumentReference]

MAX_ROUNDS = 6

T = TypeVar("T")


def _new_client() -> Client:
    from google.cloud import firestore

    settings = get_settings()
    return firestore.Client(project=settings.project_id, database=settings.firestore_database)


_client: ProcessWide[Client] = ProcessWide(_new_client)


def get_client() -> Client:
    """The process-wide Firestore client, created on first use (honours FIRESTORE_EMULATOR_HOST)."""
    return _client.get()


def reset_client() -> None:
    """Forget the client (tests that change the environment)."""
    _client.reset()


def document(collection: str, document_id: str) -> DocumentReference:
    return get_client().collection(collection).document(document_id)


def call_options() -> dict[str, Any]:
    """A deadline for every call, retries of transient errors included."""
    from google.api_core.retry import Retry, if_transient_error

    timeout = get_settings().firestore_timeout_seconds
    return {"retry": Retry(predicate=if_transient_error, initial=0.1, maximum=1.0, multiplier=2.0, timeout=timeout),
            "timeout": timeout}


# --- what a decision can be ----------------------------------------------------------------------

@dataclass(frozen=True)
class Done(Generic[T]):
    """Nothing to write: ``value`` is the answer."""

    value: T


@dataclass(frozen=True)
class Create(Generic[T]):
    """Create the document (it did not exist when read); ``value`` is the answer if that succeeds."""

    document: Mapping[str, Any]
    value: T


@dataclass(frozen=True)
class Update(Generic[T]):
    """Update the document as read (precondition: its update_time); ``value`` is the answer if that succeeds."""

    changes: Mapping[str, Any]
    value: T


Step = Done[T] | Create[T] | Update[T]


@dataclass(frozen=True)
class Settled(Generic[T]):
    value: T
    rounds: int  # more than 1: we raced a concurrent writer
    firestore_ms: float


def read_decide_write(ref: DocumentReference, decide: Callable[[Snapshot], Step[T]]) -> Settled[T]:
    """Read ``ref``, ask ``decide`` what to do with what is there, and do it only if nothing changed since.

    ``decide`` may be called more than once (after a lost race); it must not have effects of
    its own beyond caching (a classification, for example, computed once and reused).
    Raises ``ContentionError`` when the document keeps changing under us, and
    google.api_core exceptions when Firestore fails (InvalidArgument: unstorable; the rest: transient).
    """
    from google.api_core.exceptions import AlreadyExists, FailedPrecondition, NotFound

    options = call_options()
    firestore_ms = 0.0
    budget_ends = time.monotonic() + 3 * get_settings().firestore_timeout_seconds  # well inside any ack deadline
    for rounds in range(1, MAX_ROUNDS + 1):
        if rounds > 1 and time.monotonic() > budget_ends:
            break
        started = time.perf_counter()
        snapshot = ref.get(**options)
        firestore_ms += (time.perf_counter() - started) * 1000
        step = decide(snapshot)
        if isinstance(step, Done):
            return Settled(step.value, rounds, round(firestore_ms, 2))
        started = time.perf_counter()
        try:
            if isinstance(step, Create):
                ref.create(dict(step.document), **options)
            else:
                ref.update(dict(step.changes), option=get_client().write_option(last_update_time=snapshot.update_time),
                           **options)
        except (AlreadyExists, FailedPrecondition, NotFound):
            continue  # someone wrote (or deleted) since our read: decide again on what is there now
        finally:
            firestore_ms += (time.perf_counter() - started) * 1000
        return Settled(step.value, rounds, round(firestore_ms, 2))
    raise ContentionError(f"{ref.path} kept changing under us; retry later")
