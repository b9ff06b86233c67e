"""The once-per-process builder behind the model, the Firestore client and the publisher.

Why: a function instance answers concurrent requests; a cold start must build
each of these once, not once per thread that arrived first.
"""

from __future__ import annotations

import threading
import time

import pytest

from shared.process_wide import ProcessWide


def test_concurrent_first_calls_build_once_and_share_the_value() -> None:
    builds: list[int] = []

    def factory() -> object:
        builds.append(1)
        time.sleep(0.05)  # a slow load: the other threads arrive while it runs
        return object()

    holder: ProcessWide[object] = ProcessWide(factory)
    assert not holder.loaded
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(holder.get())) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len({id(r) for r in results}) == 1
    assert holder.loaded


def test_a_failed_build_is_remembered_and_retried_after_a_growing_backoff() -> None:
    calls: list[int] = []
    now = [100.0]

    def factory() -> int:
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("backend not ready")
        return len(calls)

    holder = ProcessWide(factory, backoff=(1.0, 4.0), clock=lambda: now[0])
    for _ in range(5):  # every caller within the backoff gets the error at once, without another build
        with pytest.raises(RuntimeError, match="not ready"):
            holder.get()
    assert len(calls) == 1 and holder.failures == 1 and not holder.loaded
    now[0] += 1.0
    with pytest.raises(RuntimeError):
        holder.get()  # retried after 1 s, failed again: the next wait is 2 s
    assert len(calls) == 2
    now[0] += 1.5
    with pytest.raises(RuntimeError):
        holder.get()
    assert len(calls) == 2
    now[0] += 0.5
    assert holder.get() == 3 and holder.failures == 2
    holder.reset()
    assert not holder.loaded
    assert holder.get() == 4


def test_reset_forgets_a_remembered_failure() -> None:
    calls: list[int] = []

    def factory() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("broken")
        return 7

    holder = ProcessWide(factory)
    with pytest.raises(RuntimeError):
        holder.get()
    holder.reset()
    assert holder.get() == 7
