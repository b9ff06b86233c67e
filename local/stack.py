"""The whole system on this machine, on the real emulators, in one command.

    python -m local.stack [--exit-after-samples] [--samples FILE] [--logs DIR] [--http-port 8080]

What it brings up, in order: the Pub/Sub and Firestore emulators (Firestore through its
own launcher with ``--functions_emulator``, so that it fires triggers); the three
functions on functions-framework (``classify_http`` on a fixed port so ``curl
localhost:8080`` works, the two event functions on free ports); the topics and
subscriptions, with the names and delivery settings Terraform uses (``shared/names.json``,
read here, never copied); the ``document.written`` trigger that makes the Firestore
emulator call ``on_review_labeled`` itself. Then it publishes the bundled samples, shows
each review, rejection and follow-up as it lands, prints a summary, and keeps running so
people can publish more (``python -m local.publish``) and query the HTTP function.

Why these choices:
- Every child runs in its own process group (``local.services``), so Ctrl-C, SIGTERM,
  SIGHUP or a startup failure stops the JVMs too; signals are ignored while stopping
  (``local.interrupts``), and the process ends with ``os._exit`` once everything is
  stopped: a gRPC channel closed in a finaliser once hung interpreter shutdown after
  "stopped" and ignored SIGTERM. Pub/Sub delivery to ``ingest_review`` keeps Terraform's
  retry and dead-letter policy (``local.push_relay``).
- Startup failures are one line saying what is wrong and what to do (exit status 1),
  checked before anything starts where possible (Java, gcloud, the emulator components,
  the HTTP port), and the model is warmed through the HTTP function, which both makes the
  first ``curl`` fast and turns an unusable artifact into one clear line instead of
  every review retrying into the dead-letter topic.
- The sample run waits for outcomes, not for time: every sample ends as a labeled review
  or a rejected event, and every follow-up that ``shared.followup_rule.decide`` calls for (the
  product's own rule) is in Firestore, notified when open, before the next phase (edits)
  is published and before the summary is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from local.emulators import DEFAULT_PROJECT, EmulatorError
from local.interrupts import ignore_signals, stop_on_signals
from local.live import Display, Monitor
from local.publish import DEFAULT_STATE, PublishError, read_jsonl
from local.sample_run import POLL_SECONDS, SampleRun, report, run_samples
from local.services import (
    DEFAULT_LOG_DIR,
    Stack,
    StartupError,
    check_alive,
    check_previous_run,
    clean_logs,
    preflight,
)
from shared.config import load_settings, names
from shared.errors import ConfigError

DEFAULT_HTTP_PORT = 8080
DEFAULT_SAMPLES = Path(__file__).resolve().with_name("samples.jsonl")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--exit-after-samples", action="store_true",
                        help="stop everything once the sample run has settled (exit 0 when every sample ended "
                             "as expected)")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES, help="JSONL file of samples to publish")
    parser.add_argument("--no-samples", action="store_true", help="start the stack and publish nothing")
    parser.add_argument("--logs", type=Path, default=DEFAULT_LOG_DIR, help="folder for every component's log")
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT, help="port of the HTTP function")
    parser.add_argument("--project", default=DEFAULT_PROJECT, help="the local project id")
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="where the stack writes its ports")
    parser.add_argument("--startup-timeout", type=float, default=120.0,
                        help="seconds each emulator or function may take to become ready")
    parser.add_argument("--sample-timeout", type=float, default=300.0,
                        help="seconds each phase of the sample run may take to settle")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Not a terminal (a log, CI, a test): wide lines, never wrapped mid-path.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    err = Console(stderr=True, highlight=False)
    stop_on_signals()
    stack: Stack | None = None
    monitor: Monitor | None = None
    code = 0
    try:
        settings = load_settings()
        entries = [] if args.no_samples else read_jsonl(args.samples, settings.max_review_chars)
        log_dir = args.logs.resolve()
        preflight(args.http_port)
        check_previous_run(args.state, console)
        log_dir.mkdir(parents=True, exist_ok=True)
        clean_logs(log_dir)
        console.print(f"[bold]reviewsense local stack[/] (project {args.project}); every component logs to "
                      f"[bold]{log_dir}[/]")
        stack = Stack(project=args.project, http_port=args.http_port, log_dir=log_dir, state_path=args.state,
                      startup_timeout=args.startup_timeout, settings=settings, console=console)
        stack.start()
        http = stack.functions[names()["functions"]["classify_http"]].url
        console.print(f"[bold green]ready[/]: model {stack.model.get('name')} {stack.model.get('version')}; "
                      f"state in {args.state}")
        for process in stack.processes:
            console.print(f"  {process.name:<38} {process.address:<16} log {process.log_path}")
        console.print(
            f"  try: curl -s {http} -H 'Content-Type: application/json' -d '{{\"reviews\": [\"Broke after two "
            f"days.\"]}}'\n  publish more: make publish TEXT=\"...\"  or  make publish FILE=reviews.jsonl\n"
            "  Ctrl-C stops everything")
        monitor = Monitor(stack)
        header = (f"project {args.project} · HTTP {http} · logs {log_dir} · make publish TEXT=\"...\" · "
                  "Ctrl-C stops everything")
        with Display(console, header) as display:
            if entries:
                run = SampleRun(entries, settings)
                complete = run_samples(stack, monitor, display, run, args.sample_timeout)
                ok = report(stack, display, run, monitor.poll(), complete)
                if args.exit_after_samples:
                    return 0 if ok else 1
            elif args.exit_after_samples:
                return 0
            stack.write_state("running")
            while True:
                check_alive(stack)
                snapshot = monitor.poll()
                display.update(snapshot, monitor.error or "running: publish more, or Ctrl-C to stop")
                time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        console.print("\nstopping the stack ...")
    except (StartupError, EmulatorError, PublishError, ConfigError) as exc:
        err.print(f"local stack: {exc}", markup=False, soft_wrap=True)
        code = 1
    finally:
        ignore_signals()
        if monitor is not None:
            monitor.close()
        if stack is not None:
            stack.stop()
            console.print(f"stopped; logs kept in {stack.log_dir}")
    return code


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # everything is stopped; do not wait on library finalisers (see the module docstring)
