"""`memberstream`: the one command-line front end.

The only place that dispatches to both sides: stream commands import
`stream` modules, model commands import `models` lazily (the streaming code
itself never imports `models/`). Errors are one readable line, exit code 2.
"""
from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from stream.settings import STACK_ENV, BadSettings, Settings

cli = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Real-time member intelligence: shop events in, churn alerts and recommendations out.")

DEMO_LOG = Path(".memberstream/logs/online-retail-demo.jsonl")
CHECKPOINT = Path(".memberstream/checkpoints/memberstream.pt")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code `code`."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def say(text: str) -> None:
    print(text, flush=True)


def _quiet_kafka_client() -> None:
    """A client command's errors are its own one line: aiokafka's log lines (a refused
    connection, each retry) would come first, on stderr, through logging's last resort."""
    import logging

    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@cli.command()
def up(workers: int = typer.Option(1, min=0, help="Faust workers to start")) -> None:
    """Start the embedded broker, Triton and workers, and keep them running: a dead
    worker or Triton is restarted with backoff; the broker's death stops all. Ctrl-C stops all."""
    from stream.tools.stack import running_stack, write_stack_env, write_stack_pids
    from stream.tools.supervisor import StackLost

    settings = Settings()
    with running_stack(settings, settings.state_dir / "up", workers=workers, say=say) as stack:
        path = write_stack_env(stack, settings)
        say(f"recorded in {path}; `memberstream replay FILE` and `memberstream tail TOPIC` find it")
        say("Ctrl-C stops everything")
        # Also when started in the background, where a shell may have SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            stack.supervisor(settings, say, on_restart=lambda: write_stack_pids(stack, path)).run()
        except KeyboardInterrupt:
            pass
        except StackLost as exc:
            raise CliError(str(exc)) from None
        finally:
            STACK_ENV.unlink(missing_ok=True)
            STACK_ENV.with_suffix(".json").unlink(missing_ok=True)
            say("stopping ...")


@cli.command()
def worker() -> None:
    """Run one Faust worker against the configured broker and Triton."""
    settings = Settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
    if settings.uvloop:
        import uvloop  # before any loop of this process exists (the batcher's process installs its own)

        uvloop.install()
    from faust import Worker as FaustWorker

    from stream.kafka.admin import ensure_topics
    from stream.processing.member_cache import tune_gc
    from stream.worker.access import check_binding
    from stream.worker.app import build_app

    tune_gc(settings.gc_threshold)
    refused = check_binding(settings.web_host, settings.api_token)  # before any connection
    if refused is not None:
        raise BadSettings(refused)
    asyncio.run(ensure_topics(settings.bootstrap_servers, settings.partitions, security=settings.kafka_security,
                             replication=settings.topic_replication_factor))
    app, _ = build_app(settings)
    FaustWorker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


@cli.command()
def replay(file: Path = typer.Argument(..., help="JSON lines, one input event per line"),
           max_: bool = typer.Option(False, "--max", help="as fast as possible (the default)"),
           speed: Optional[float] = typer.Option(None, help="event-time factor: 3600 = an hour per second"),
           rate: Optional[float] = typer.Option(None, help="fixed events per second"),
           as_is: bool = typer.Option(False, "--as-is", help="send lines that are not JSON objects too "
                                      "(unkeyed; the worker dead-letters them)"),
           timeout: float = typer.Option(40.0, min=0.1, help="seconds a send may take, retries "
                                         "included, before it counts as failed")) -> None:
    """Publish a recorded log to shop.events; every delivery is awaited, and any that
    failed makes the exit code 1."""
    from stream.tools.progress import counted
    from stream.tools.replay import read_log, replay as run

    _quiet_kafka_client()
    if sum(x is not None and x is not False for x in (speed, rate, max_ or None)) > 1:
        raise CliError("give at most one of --max, --speed, --rate")
    settings = Settings()
    lines = read_log(file, json_objects=not as_is)
    with counted("queued", len(lines)) as advance:
        stats = asyncio.run(run(file, settings.bootstrap_servers, settings.partitions, speed=speed, rate=rate,
                                progress=advance, lines=lines, as_is=as_is, timeout_s=timeout,
                                security=settings.kafka_security, replication=settings.topic_replication_factor))
    if stats.failed:
        raise CliError(f"{stats.failed} of {stats.sent + stats.failed} events were not delivered to "
                       f"{settings.bootstrap_servers} ({stats.sent} were); first error: {stats.first_error}", 1)
    say(f"sent {stats.sent} events in {stats.seconds:.1f} s ({stats.sent / max(stats.seconds, 1e-9):.0f}/s)")


@cli.command()
def tail(topic: str = typer.Argument(..., help="e.g. crm.churn-alerts"),
         from_beginning: bool = typer.Option(False, "--from-beginning"),
         count: Optional[int] = typer.Option(None, min=1, help="stop after N messages"),
         idle: Optional[float] = typer.Option(None, min=0, help="stop after SECONDS without one"),
         json_lines: bool = typer.Option(False, "--json", help="print the raw messages, one JSON object per line"),
         envelope: bool = typer.Option(False, help="with --json: wrap with topic, partition, offset, key, headers")) -> None:
    """Print a topic's messages as they arrive: one readable line each, or with --json
    the messages themselves as JSON lines; flushed per line."""
    import orjson

    from stream.tools.tail import as_json, messages, pretty

    _quiet_kafka_client()
    settings = Settings()

    async def run() -> None:
        async for msg in messages(settings.bootstrap_servers, topic, from_beginning, count, idle,
                                  security=settings.kafka_security):
            line = orjson.dumps(as_json(msg, envelope)).decode() if json_lines or envelope else pretty(msg)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    asyncio.run(run())


@cli.command()
def train(out: Path = typer.Option(CHECKPOINT, help="checkpoint file to write"),
          epochs: Optional[int] = typer.Option(None, min=1),
          seed: Optional[int] = typer.Option(None)) -> None:
    """Train the member transformer on Online Retail (../shared/data)."""
    from dataclasses import replace

    from models.config import TrainConfig
    from models.export import save_checkpoint
    from models.recipes import online_retail_model

    config = TrainConfig()
    config = replace(config, **{k: v for k, v in {"epochs": epochs, "seed": seed}.items() if v is not None})
    trained, note = online_retail_model(Settings().data_dir, config, progress=say)
    save_checkpoint(trained, out, note)
    say(f"validation: {trained.metrics}")
    say(f"checkpoint written to {out}")


@cli.command()
def export(checkpoint: Path = typer.Option(CHECKPOINT, help="from `memberstream train`"),
           repo: Optional[Path] = typer.Option(None, help="Triton model repository (default triton_repo)"),
           version: int = typer.Option(1, min=1)) -> None:
    """Write triton_repo/<model>/<version>/ from a checkpoint."""
    from models.export import export as run

    if not checkpoint.is_file():
        raise CliError(f"checkpoint not found: {checkpoint} (run `memberstream train`)")
    settings = Settings()
    out = run(checkpoint, repo or settings.triton_repo, settings.triton_model, version)
    say(f"exported to {out}")


@cli.command()
def evaluate(dataset: str = typer.Argument(..., help="yoochoose, cdnow, online-retail or diginetica"),
             predictions: Optional[Path] = typer.Option(None, help="write every prediction to this file"),
             results: Optional[Path] = typer.Option(None, help="write the tables as JSON to this file"),
             validation: bool = typer.Option(False, help="tuning split: training data only, no test")) -> None:
    """Train on a public data set's training split and compare with baselines (docs/model.md)."""
    from models.evaluation.report import write_json
    from models.evaluation.runs import RUNS, run

    if dataset not in RUNS:
        raise CliError(f"unknown data set {dataset!r}; choose from {', '.join(RUNS)}")
    for path in (predictions, results):
        if path is not None and path.is_dir():
            raise CliError(f"{path} is a directory, expected a file path")
    result, text = run(dataset, Settings().data_dir, predictions, validation, progress=say)
    write_json(results, {"dataset": dataset, "validation": validation, **result})
    say("")
    say(text)
    if predictions is not None:
        say(f"\npredictions written to {predictions}")


@cli.command("evaluate-stream")
def evaluate_stream(log: Path = typer.Argument(..., help="contract event log (JSON lines), e.g. from make-log"),
                    cutoff: str = typer.Option(..., help="YYYY-MM-DD (UTC) or RFC 3339: replay up to here"),
                    end: Optional[str] = typer.Option(None, help="end of the holdout (default: the log's end)"),
                    train: bool = typer.Option(True, help="train a model on the events before the cutoff "
                                                          "(--no-train: serve the repository's model)"),
                    results: Optional[Path] = typer.Option(None, help="write the tables as JSON to this file")) -> None:
    """Replay a log up to a cutoff through the real stack, read every member from /members and
    score them against what came after, beside the baselines and the offline figures."""
    from models.evaluation.report import write_json
    from models.evaluation.stream_eval import evaluate_stream as run, parse_day, report

    if not log.is_file():
        raise CliError(f"log file not found: {log}")
    if results is not None and results.is_dir():
        raise CliError(f"{results} is a directory, expected a file path")
    try:
        cut, until = parse_day(cutoff), (parse_day(end) if end else None)
        settings = Settings()
        result = run(log, cut, until, settings, settings.state_dir / "evaluate-stream", train, say)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    write_json(results, result)
    say("")
    say(report(result))


@cli.command()
def bench(out: Path = typer.Option(Path("bench/results.json"), help="results file (JSON)")) -> None:
    """Throughput of the pipeline against raw aiokafka and a trivial Faust agent, Triton per batch size."""
    import logging

    from bench.bench import run as run_bench
    from stream.log_limit import limit_root_handlers

    logging.basicConfig(level=logging.WARNING)  # the processor's lines rate limited, as in a worker
    limit_root_handlers()
    if out.is_dir():
        raise CliError(f"{out} is a directory, expected a file path")
    run_bench(Settings(), out, say)


@cli.command("make-log")
def make_log(out: Path = typer.Option(DEMO_LOG), every: int = typer.Option(
        8, min=1, help="keep one member in EVERY (by member id)")) -> None:
    """Build the demo log: Online Retail members' purchases (cancellations included)."""
    say(f"wrote {_make_log(out, every)} events to {out}")


@cli.command()
def schemas(out: Path = typer.Option(Path("schemas"))) -> None:
    """Write the JSON Schema of every topic."""
    from stream.contract.schemas import write_json_schemas

    for path in write_json_schemas(out):
        say(f"wrote {path}")


@cli.command()
def reidentify(members: Path = typer.Option(..., help="the shop's member ids, one per line"),
               pseudonyms: Optional[list[str]] = typer.Argument(None, help="pseudonyms (default: one per line on stdin)"),
               keys: Optional[Path] = typer.Option(None, help="'KEY_ID KEY' per line, e.g. the keys before a "
                                                   "rotation (default: MEMBERSTREAM_PSEUDONYMIZATION_KEY[_FILE])")) -> None:
    """CRM side: print 'pseudonym member_id' for each pseudonym found among the member ids
    under the keys; exit 1 if any was not found."""
    from stream.domain.pseudonym import reidentify as run

    settings = Settings()
    if keys is not None:
        pairs = [line.split() for line in keys.read_text().splitlines() if line.strip()]
        if any(len(p) != 2 for p in pairs):
            raise CliError(f"{keys}: each line must be 'KEY_ID KEY'")
        known = dict(pairs)
    elif settings.pseudonymization_key is not None:
        known = {settings.pseudonymization_key_id: settings.pseudonymization_key.get_secret_value()}
    else:
        raise CliError("no key: set MEMBERSTREAM_PSEUDONYMIZATION_KEY (or _FILE), or give --keys")
    wanted = pseudonyms or [line.strip() for line in sys.stdin if line.strip()]
    found = run(wanted, (line.strip() for line in members.open() if line.strip()), known)
    for p in wanted:
        if p in found:
            say(f"{p} {found[p]}")
    if len(found) < len(set(wanted)):
        raise CliError(f"{len(set(wanted)) - len(found)} of {len(set(wanted))} pseudonyms not found among "
                       f"{members} under key ids {', '.join(sorted(known))}", 1)


@cli.command()
def demo(log: Optional[Path] = typer.Option(None, help="log to replay (default: built from Online Retail)"),
         follow: bool = typer.Option(False, "--follow", help="keep the stack and the dashboard running "
                                                            "after the summary, until Ctrl-C")) -> None:
    """What `make demo` runs: the whole path on real parts, live, with a summary and the story."""
    from stream.tools.demo import run_demo

    settings = Settings()
    if not (settings.triton_repo / settings.triton_model / "config.pbtxt").is_file():
        say("no trained model in the Triton repository: training one (about 3 minutes) ...")
        train(CHECKPOINT, None, None)
        export(CHECKPOINT, None, 1)
    if log is None:
        log = DEMO_LOG
        if not log.is_file():
            say(f"building the demo log {log} from {settings.data_dir} ...")
            _make_log(log, 8)
    elif not log.is_file():
        raise CliError(f"log file not found: {log}")
    run_demo(settings, log, say, follow)


def _make_log(out: Path, every: int) -> int:
    from models.datasets import contract_events, online_retail
    from stream.tools.logs import write_log

    events = online_retail(Settings().data_dir, include_cancellations=True)
    return write_log(out, contract_events([e for e in events if int(e.member_id) % every == 0]))


def _bad_settings(exc) -> str:
    """pydantic's account of the Settings' bad values, as one line naming the variables;
    a secret's value is never shown."""
    def one(e) -> str:
        name = str(e["loc"][0]) if e["loc"] else "?"
        secret = any(word in name for word in ("password", "key", "token"))
        return f"MEMBERSTREAM_{name.upper()}: {e['msg']}" + ("" if secret else f" (got {e['input']!r})")
    return "bad setting: " + "; ".join(one(e) for e in exc.errors(include_url=False))


def main(argv: Optional[list[str]] = None) -> int:
    from pydantic import ValidationError

    from models.datasets import DataError

    from stream.tools.launcher import LaunchError
    from stream.tools.logs import LogError
    from stream.tools.replay import ReplayError

    try:
        cli(args=argv, prog_name="memberstream", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        return 130
    except typer.TyperException as exc:  # usage errors: bad flag, bad value, no such command
        if hasattr(exc, "ctx") and type(exc).__name__ == "NoArgsIsHelpError":
            print(exc.ctx.get_help())
            return 0
        print(f"memberstream: {exc.format_message()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"memberstream: {exc}", file=sys.stderr)
        return exc.code
    except (LaunchError, LogError, ReplayError, DataError, LookupError, OSError) as exc:
        print(f"memberstream: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        print(f"memberstream: {_bad_settings(exc)}", file=sys.stderr)
        return 2
    except BadSettings as exc:
        print(f"memberstream: bad setting: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
