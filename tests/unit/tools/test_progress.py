"""Progress lines (stream/tools/progress.py): off a terminal, a line at most every
LINE_INTERVAL_S and always the last one; on a terminal, a rich bar that leaves no line."""
import io

from rich.console import Console

from stream.tools import progress


def test_lines_off_a_terminal_are_spaced_and_end_with_the_total():
    said, now = [], [0.0]
    with progress.counted("queued", 10, say=said.append, terminal=False, clock=lambda: now[0]) as advance:
        for done in range(1, 11):
            now[0] = done * 0.5  # 0.5 s per event: a line every 4 events at a 2 s interval
            advance(done)
    assert said == ["  queued: 4/10 events (40 %, 2/s)", "  queued: 8/10 events (80 %, 2/s)",
                    "  queued: 10/10 events (100 %, 2/s)"]


def test_a_terminal_gets_a_transient_bar(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("rich.progress.get_console", lambda: Console(file=out, force_terminal=True, width=80))
    said = []
    with progress.counted("queued", 3, say=said.append, terminal=True) as advance:
        for done in (1, 2, 3):
            advance(done)
    assert said == []  # the bar, not lines
    assert "queued" in out.getvalue() and "3/3" in out.getvalue()
