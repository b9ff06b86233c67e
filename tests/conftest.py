"""Shared fixtures: the real Pub/Sub and Firestore emulators, once per session, and function servers.

Why once per session: each emulator is a JVM that takes seconds to start on a busy
machine; tests isolate themselves instead (Firestore is wiped before each test that asks
for ``clean_firestore``, topics and subscriptions are named per test). Everything is
started on free ports in its own process group and stopped (group killed) at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from local.emulators import FirestoreEmulator, FunctionServer, PubSubEmulator
from shared.classifier import Labeler

PROJECT = "reviewsense-test"


@pytest.fixture(scope="session")
def emulator_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-logs")


@pytest.fixture(scope="session")
def pubsub_emulator(emulator_log_dir: Path) -> Iterator[PubSubEmulator]:
    with PubSubEmulator(project=PROJECT, log_dir=emulator_log_dir) as emulator:
        yield emulator


@pytest.fixture(scope="session")
def firestore_emulator(emulator_log_dir: Path) -> Iterator[FirestoreEmulator]:
    """A plain Firestore emulator (no functions emulator: no triggers are delivered)."""
    with FirestoreEmulator(project=PROJECT, log_dir=emulator_log_dir) as emulator:
        yield emulator


@pytest.fixture
def clean_firestore(firestore_emulator: FirestoreEmulator) -> FirestoreEmulator:
    """The session's Firestore emulator, emptied before the test."""
    firestore_emulator.reset()
    return firestore_emulator


def function_env(firestore: FirestoreEmulator, **extra: str) -> dict[str, str]:
    """What a function server needs to use the emulator: project, host, one ORT thread (the cores are shared)."""
    return {**firestore.env(), "GOOGLE_CLOUD_PROJECT": firestore.project, "ORT_INTRA_OP_THREADS": "1",
            "LOG_LEVEL": "INFO", **extra}


StartServer = Callable[..., FunctionServer]


@pytest.fixture
def start_function_server(emulator_log_dir: Path) -> Iterator[StartServer]:
    """``start(target, env) -> FunctionServer``: functions-framework subprocesses, stopped after the test."""
    servers: list[FunctionServer] = []

    def start(target: str, env: Mapping[str, str], **kwargs: object) -> FunctionServer:
        server = FunctionServer(target, env=env, log_dir=emulator_log_dir, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def configured_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Labeler]]:
    """The process-wide model as an environment configures it (``configure(MODEL_DIR=...)``); afterwards the
    environment, the settings and the model are the defaults again."""
    from shared import classifier, config

    def configure(**env: str) -> Labeler:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        config.get_settings.cache_clear()
        classifier.reset_for_tests()
        return classifier.get_classifier()

    yield configure
    monkeypatch.undo()
    config.get_settings.cache_clear()
    classifier.reset_for_tests()
