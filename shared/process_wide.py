"""One object per process, built on first use: the model, the Firestore client, the Pub/Sub publisher.

Why one mechanism: a function instance serves many requests (and threads) but should pay each load once, and
importing ``main.py`` must load nothing. The double-checked lock lives here instead of beside every global.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ProcessWide(Generic[T]):
    """Builds its value with ``factory`` on the first ``get()``, once, even under concurrent first calls."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._factory()
        return value

    @property
    def loaded(self) -> bool:
        """Whether this process already paid the build (the next call is warm)."""
        return self._value is not None

    def reset(self) -> None:
        """Forget the value (tests that change the environment or exercise the first load again)."""
        with self._lock:
            self._value = None
