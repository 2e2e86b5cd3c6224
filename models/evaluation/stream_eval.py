"""`memberstream evaluate-stream LOG --cutoff DATE`: the running system, scored.

1. The log (contract JSON lines, e.g. `memberstream make-log`) is read; lines
   the pipeline would dead-letter are left out here too.
2. With `train`, a model is trained on the events before the cutoff alone
   (Online Retail's settings, horizon = the holdout), exported with its
   member-value model to a Triton repository of its own; otherwise the
   repository's model is served (it may have seen the holdout: said so).
3. The real stack starts (broker, Triton, one worker with top-20 lists), the
   events before the cutoff are replayed, and every member is read from
   `GET /members/{id}?at=<cutoff>`: churn at the cutoff's silence, the
   recommendation list, the value, the lifecycle stage.
4. In the same run, the same model computed in-process on the same events
   (the offline `evaluate`'s path) and the baselines; the stream's figures
   and the offline ones side by side, and their difference.

Churn = no event in [cutoff, end); next purchases = items bought then.
"""
from __future__ import annotations

import asyncio
import json
import tempfile
import urllib.parse
import urllib.request
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from stream.domain.event_time import rfc3339
from stream.domain.parsing import Rejected, parse_event
from stream.settings import Settings, environment

from ..datasets import MemberEvent, by_member, sort_events
from ..encoding import DAY
from ..metrics import churn_metrics, reliability
from ..member_value import fit_on_events
from . import churn as offline
from .bgnbd import BGNBD
from .value import evaluate_value

WEEK = 7 * DAY


def read_events(path: Path) -> tuple[list[MemberEvent], list[bytes], int]:
    """(valid events as MemberEvents, their lines, lines refused) of a contract log."""
    events, lines, refused = [], [], 0
    for line in Path(path).read_bytes().splitlines():
        if not line.strip():
            continue
        e = parse_event(line, None, 1 << 20)
        if isinstance(e, Rejected):
            refused += 1
            continue
        events.append(MemberEvent(e.event_id, e.member_id, e.ts / 1000.0, e.item_id, e.type, e.quantity,
                                  e.price, e.session_id))
        lines.append(line)
    return events, lines, refused


def _train(events: list[MemberEvent], cutoff: float, end: float, repo: Path, say) -> Path:
    from ..export import export, save_checkpoint
    from ..train import train
    from .runs import RETAIL_CONFIG

    config = replace(RETAIL_CONFIG, model=replace(RETAIL_CONFIG.model, churn_horizon_days=(end - cutoff) / DAY))
    before = [e for e in events if e.ts < cutoff]
    start = min(e.ts for e in before) // DAY * DAY  # midnight UTC of the first day, as `evaluate`
    trained = train(by_member(before), start, cutoff, config, say)
    trained.value = fit_on_events(before, cutoff, config.model.max_len)
    checkpoint = repo.parent / "model.pt"
    save_checkpoint(trained, checkpoint, f"events before {rfc3339(int(cutoff * 1000))} of the log")
    return export(checkpoint, repo)


def _members_at(web_url: str, members: list[str], at: str, settings: Settings) -> dict[str, dict]:
    """Each member's state and scores at `at`, asked as the worker names them (their
    pseudonym when one is configured), with the API token when one is."""
    name = settings.pseudonymizer() or (lambda m: m)
    token = settings.api_token
    headers = {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}
    out = {}
    for m in members:
        url = f"{web_url}/members/{urllib.parse.quote(name(m), safe='')}?at={urllib.parse.quote(at)}"
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            out[m] = json.load(r)
    return out


def _churn_rows(labels, members, histories, cutoff, end, scored: dict, recency) -> list[dict]:
    x, t_x, T = offline.rfm(histories, members, cutoff)
    bg = BGNBD.fit(x, t_x, T)
    t = (end - cutoff) / WEEK
    rows = [{"model": name, **churn_metrics(labels, p, True, 0.6)} for name, p in scored.items()]
    rows += [{"model": "recency only (days silent)", **churn_metrics(labels, recency, False, 0.6)},
             {"model": "frequency only (fewer purchase days)", **churn_metrics(labels, -x, False, 0.6)},
             {"model": "BG/NBD P(no purchase in holdout)",
              **churn_metrics(labels, bg.p_no_purchase(x, t_x, T, t), True, 0.6)},
             {"model": "BG/NBD expected purchases (negated)",
              **churn_metrics(labels, -bg.expected_purchases(x, t_x, T, t), False, 0.6)}]
    return rows


def evaluate_stream(log: Path, cutoff: float, end: float | None, settings: Settings, work_dir: Path,
                    train: bool, say: Callable[[str], None] = print) -> dict:
    from stream.tools.launcher import wait_until
    from stream.tools.replay import replay
    from stream.tools.stack import running_stack

    from ..export import load_exported

    events, lines, refused = read_events(log)
    if not events:
        raise ValueError(f"{log}: no valid event")
    end = end if end is not None else max(e.ts for e in events) + 1
    if not min(e.ts for e in events) < cutoff < end:
        raise ValueError("the cutoff must fall inside the log, before its end")
    before = [line for line, e in zip(lines, events) if e.ts < cutoff]  # in the log's order
    events = sort_events(events)
    say(f"{len(events)} events ({refused} lines refused), cutoff {rfc3339(int(cutoff * 1000))}, "
        f"holdout {(end - cutoff) / DAY:.0f} days")
    work_dir.mkdir(parents=True, exist_ok=True)
    repo = Path(tempfile.mkdtemp(prefix="repo-", dir=work_dir)) / "triton_repo" if train else settings.triton_repo
    if train:
        version = _train(events, cutoff, end, repo, say)
    else:
        version = repo / settings.triton_model / "1"
        say(f"serving {version} as it is: a model trained on the holdout scores better than it should")
    model = load_exported(version)

    # Offline: the same model in-process on the same events.
    histories = by_member(events)
    calibration = [e for e in events if e.ts < cutoff]
    rows = offline.stream_rows(calibration, cutoff, model.config.model.max_len)
    churn_offline, top = offline.score(model, rows, model.config.model.top_k)
    members = rows.members

    # The stream: the real stack, the log up to the cutoff, every member at the cutoff.
    stack_settings = settings.model_copy(update={"triton_repo": repo})
    extra = environment(recommendations_k=20, member_value_path=version / "member_value.json")
    at = rfc3339(int(cutoff * 1000))
    with running_stack(stack_settings, work_dir / "stack", say=say, worker_env=extra) as stack:
        worker = stack.workers[0]
        say(f"replaying {len(before)} events before the cutoff ...")
        stats = asyncio.run(replay(Path("-"), stack.broker.bootstrap, settings.partitions, lines=before))
        wait_until(lambda: worker.settled(stats.sent), 1800, "the worker to process the replay", worker.process, 0.5)
        say(f"reading {len(members)} members at {at} ...")
        served = _members_at(worker.web_url, members, at, stack_settings)

    labels = np.array([float(not any(cutoff <= e.ts < end for e in histories[m])) for m in members])
    churn_stream = np.array([served[m]["assessed"]["churn_probability"] for m in members])
    recency = rows.silence.reshape(-1) / DAY
    cal = {m: [e for e in histories[m] if e.ts < cutoff] for m in members}
    churn_table = _churn_rows(labels, members, cal, cutoff, end,
                              {"stream: churn at the cutoff": churn_stream,
                               "offline: the same model in-process": churn_offline}, recency)
    stream_lists = {m: [r["item_id"] for r in served[m]["assessed"]["recommendations"]] for m in members}
    next_purchase = offline.evaluate_next_purchase(events, cutoff, end, rows, top,
                                                   extra={"stream: memberstream blend (served)": stream_lists})
    stages: dict[str, list[float]] = {}
    for m, label in zip(members, labels):
        stages.setdefault(served[m]["lifecycle_stage"] or "none", []).append(label)
    stage_table = [{"stage": s, "members": len(v), "no event in the holdout": float(np.mean(v))}
                   for s, v in sorted(stages.items())]
    by = {r["model"]: r for r in churn_table}
    hr = {r["model"]: r for r in next_purchase}
    agreement = {
        "churn auc": abs(by["stream: churn at the cutoff"]["auc"] - by["offline: the same model in-process"]["auc"]),
        "hr@20 all": abs(hr["stream: memberstream blend (served)"]["all hr@20"]
                         - hr["memberstream blend (served)"]["all hr@20"]),
        "hr@20 new": abs(hr["stream: memberstream blend (served)"]["new hr@20"]
                         - hr["memberstream blend (served)"]["new hr@20"])}
    return {"log": str(log), "cutoff": at, "end": rfc3339(int(end * 1000)), "members": len(members),
            "churn_rate": float(labels.mean()), "model": str(version), "trained_here": train,
            "churn": churn_table, "reliability": reliability(labels, churn_stream),
            "next_purchase": next_purchase, "stages": stage_table,
            "member_value": evaluate_value(events, cutoff, end, rows), "stream_vs_offline": agreement}


def parse_day(text: str) -> float:
    """YYYY-MM-DD (UTC midnight) or an RFC 3339 time -> epoch seconds."""
    try:
        if len(text) == 10:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or an RFC 3339 time") from None



def report(result: dict) -> str:
    from .report import table

    np_cols = ["model"] + [f"{s} {m}" for s in ("all", "new") for m in ("members", "hr@20")]
    value = result["member_value"]
    return "\n\n".join([
        table(f"churn at {result['cutoff']} ({result['members']} members, churn rate "
              f"{result['churn_rate']:.3f}, holdout to {result['end']})", result["churn"],
              ["model", "auc", "pr_auc", "brier", "ece"]),
        table("next-purchase HR@20 (members buying any item / items new to them)", result["next_purchase"], np_cols),
        table("lifecycle stages read from /members", result["stages"], ["stage", "members", "no event in the holdout"]),
        table(f"member value over {value['horizon_days']:.0f} days", value["table"],
              ["model", "purchases mae", "spend spearman"]),
        "stream vs offline (absolute differences): " + ", ".join(
            f"{k} {v:.4f}" for k, v in result["stream_vs_offline"].items())])
