"""Progress of long work on the command line: a rich bar on a terminal, a plain
line now and then otherwise (a log file or CI keeps every line readable)."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Callable, Iterator

LINE_INTERVAL_S = 2.0


@contextlib.contextmanager
def counted(what: str, total: int, unit: str = "events",
            say: Callable[[str], None] = lambda s: print(s, flush=True),
            terminal: bool | None = None, clock: Callable[[], float] = time.monotonic) -> Iterator[Callable[[int], None]]:
    """Yields `advance(done)`; `done` counts up to `total`."""
    terminal = sys.stderr.isatty() if terminal is None else terminal
    if terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn(unit), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(what, total=total)
            yield lambda done: bar.update(task, completed=done)
        return
    t0 = last = clock()

    def advance(done: int) -> None:
        nonlocal last
        now = clock()
        if now - last >= LINE_INTERVAL_S or done >= total:
            last = now
            rate = done / max(now - t0, 1e-9)
            say(f"  {what}: {done}/{total} {unit} ({100 * done / max(total, 1):.0f} %, {rate:.0f}/s)")

    yield advance
