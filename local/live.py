"""Watching the running stack: a ``Snapshot`` of Firestore and the pull subscriptions, shown live or line by line."""

from __future__ import annotations

import contextlib
from typing import Any

from rich.console import Console
from rich.live import Live

from local.interrupts import checkpoint
from local.services import Stack, view_subscription
from local.view import ChangeLog, FirestoreReader, Snapshot, render
from shared.config import names


class Monitor:
    """Fills one ``Snapshot`` from Firestore and the two pull subscriptions, every poll."""

    def __init__(self, stack: Stack) -> None:
        assert stack.pubsub is not None and stack.firestore is not None
        self.stack = stack
        self.pubsub = stack.pubsub
        self.reader = FirestoreReader(stack.firestore.address, stack.project, stack.settings)
        self.snapshot = Snapshot()
        self.error: str | None = None

    def poll(self) -> Snapshot:
        checkpoint()
        n = names()
        try:
            self.reader.read(self.snapshot)
            for message in self.pubsub.pull(view_subscription(self.stack.settings.followup_topic)):
                self.snapshot.notifications[message["messageId"]] = message
            # Peeked, not acknowledged: the hold subscription keeps dead letters for whoever inspects them.
            for message in self.pubsub.pull(n["dead_letter_subscription"], ack=False):
                self.snapshot.dead_letters[message["messageId"]] = message
            self.error = None
        except Exception as exc:  # a slow emulator: show it and try again on the next poll
            self.error = f"reading the emulators failed, retrying: {type(exc).__name__}: {str(exc)[:120]}"
        return self.snapshot

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()


class Display:
    """A live table on a terminal, one line per change otherwise."""

    def __init__(self, console: Console, header: str) -> None:
        self.console = console
        self.header = header
        self.live: Live | None = None
        self.changes = ChangeLog()

    def __enter__(self) -> Display:
        if self.console.is_terminal:
            self.live = Live(console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def update(self, snapshot: Snapshot, progress: str | None) -> None:
        if self.live is not None:
            self.live.update(render(snapshot, self.header, progress))
            return
        for line in self.changes.lines(snapshot):
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def print(self, *items: Any) -> None:
        (self.live.console if self.live is not None else self.console).print(*items, highlight=False)
