"""One object per process, built on first use: the model, the Firestore client, the Pub/Sub publisher.

Why one mechanism: a function instance serves many requests (and threads) but should pay each load once, and
importing ``main.py`` must load nothing. The double-checked lock lives here instead of beside every global.

A failed build is remembered: until a backoff has passed (1 s, doubling to 60 s) every caller gets the same error at
once instead of queueing on the lock to pay the load again (a broken model artifact costs about 120 ms of CPU per
attempt, which would turn every request into another attempt).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """Builds its value with ``factory`` on the first ``get()``, once, even under concurrent first calls."""

    def __init__(self, factory: Callable[[], T], *, backoff: tuple[float, float] = (1.0, 60.0),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None
        self._backoff = backoff
        self._clock = clock
        self._failure: Exception | None = None
        self._retry_at = 0.0
        self._delay = backoff[0]
        self.failures = 0  # builds that raised (a caller can tell a fresh failure from a remembered one)

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build()
        return value

    def _build(self) -> T:
        if self._failure is not None and self._clock() < self._retry_at:
            raise self._failure.with_traceback(None)
        try:
            value = self._factory()
        except Exception as exc:
            self.failures += 1
            self._failure, self._retry_at = exc, self._clock() + self._delay
            self._delay = min(self._delay * 2, self._backoff[1])
            raise
        self._failure, self._delay = None, self._backoff[0]
        return value

    @property
    def loaded(self) -> bool:
        """Whether this process already paid the build (the next call is warm)."""
        return self._value is not None

    def reset(self) -> None:
        """Forget the value and any remembered failure (tests that change the environment or exercise the first
        load again)."""
        with self._lock:
            self._value = None
            self._failure, self._delay = None, self._backoff[0]
