"""bench/gpu.py's rows and in-process measures, on the CPU: what a GPU session will time
is what its table says (members who added one event, no row seen twice)."""
import pytest

from bench import gpu
from tests.fixtures.model import shipped


def _events(arrays, row):
    n = int((arrays[1][row] > 0).sum())
    return [tuple(a[row][-n:].tolist()) for a in arrays[:3]] if n else [(), (), ()]


def _key(arrays, row):
    return tuple(tuple(a[row].tolist()) for a in arrays[:3])


def test_every_row_extends_its_previous_one_by_one_event_and_none_repeats():
    _, vocab, _ = shipped()
    members = gpu.extension_pairs()
    assert len(members) >= 10 and sum(map(len, members)) > 500
    before, after = gpu.distinct_pairs(members, vocab.items, 3_000, start=500)
    assert len(before[0]) == len(after[0]) == 3_000
    for row in range(3_000):
        old, new = _events(before, row), _events(after, row)
        assert all(len(n) == len(o) + 1 and n[:-1] == o for o, n in zip(old, new))
    rows = {_key(after, r) for r in range(3_000)}
    assert len(rows) == 3_000  # no row repeats
    assert not rows & {_key(before, r) for r in range(3_000)}  # and none is another's previous one
    # The same order from any start: rows 500.. of a pool from 0 are this pool's rows.
    _, whole = gpu.distinct_pairs(members, vocab.items, 3_500)
    assert all(_key(whole, 500 + r) == _key(after, r) for r in (0, 1, 2_999))
    with pytest.raises(ValueError, match="distinct rows"):
        gpu.distinct_pairs(members, vocab.items, len(members) * len(vocab.items) + 1)


@pytest.mark.parametrize("batch", [1, 16])
def test_incremental_measure_encodes_the_new_event_alone(batch):
    """On the CPU: the full variant encodes every event of its timed rows (all calls but
    the untimed last; at one row a call exactly those, in groups at least those), the
    incremental one (warmed with the rows' previous sequences) the new one, except rows
    whose previous sequence another row took (two members with the same first event)."""
    model, vocab, k = shipped()
    pool = gpu.distinct_pairs(gpu.extension_pairs(), vocab.items, 160)
    full = gpu.in_process(model, vocab, k, pool, batch, "full", lambda: None)
    inc = gpu.in_process(model, vocab, k, pool, batch, "incremental", lambda: None)
    events = (pool[1][1][:160 - batch] > 0).sum() / (160 - batch)
    if batch == 1:
        assert full["positions_per_row"] == pytest.approx(events)
    else:
        assert full["positions_per_row"] >= events
    assert events > 10
    assert 1.0 <= inc["positions_per_row"] <= 1.25
    for r in (full, inc):
        assert r["rows_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]


def test_results_section_names_the_device_and_every_variant():
    sizes = [{"batch": b, "rows": 32 * b,
              **{f"cuda_{p}_{e}": {"rows_per_s": 1000.0 * b, "p50_ms": 1.0, "p99_ms": 2.0, "positions_per_row": 1.0}
                 for p in gpu.PRECISIONS for e in gpu.ENCODINGS},
              **{f"cpu_fp32_{e}": {"rows_per_s": 100.0 * b, "p50_ms": 3.0, "p99_ms": 4.0, "positions_per_row": 1.0}
                 for e in gpu.ENCODINGS},
              "triton_full": {"rows_per_s": 500.0 * b, "p50_ms": 1.0, "p99_ms": 2.0}} for b in (1, 256)]
    results = {"device": "cuda", "date": "2026-12-07T00:00:00Z", "commit": "abc1234", "clients": 4, "pairs": 615,
               "members": 20, "command": "python -m bench.gpu",
               "machine": {"gpu": "NVIDIA H100", "cpu": "x", "cores": 16}, "sizes": sizes}
    text = gpu.results_section(results)
    assert text.startswith("## GPU\n") and "GPU NVIDIA H100" in text and "commit abc1234" in text
    rows = [line for line in text.splitlines() if line.startswith("| 256 |")]
    assert len(rows) == 7  # 4 in-process GPU, Triton full (incremental not measured), 2 CPU
    assert any(row.startswith("| 256 | Triton CUDA, bf16 exported, full |") for row in rows)
    assert "| 256 | in-process CUDA, bf16, full | 256,000 | 1.00 | 2.00 | 1.00 | 10.0x |" in rows


def test_gpu_section_replaces_the_old_one_and_keeps_the_others(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text("# Benchmark results\n\n## CPU\n\ncpu table\n\n## GPU\n\nNot measured.\n\n## Later\n\nkept\n")
    gpu.replace_gpu_section(path, "## GPU\n\nnew table\n")
    assert path.read_text() == "# Benchmark results\n\n## CPU\n\ncpu table\n\n## GPU\n\nnew table\n\n## Later\n\nkept\n"


def test_too_many_rows_asked_is_one_line_before_any_measure(capsys, monkeypatch):
    monkeypatch.setattr(gpu, "calls_for", lambda batch: 10 ** 6)
    assert gpu.main(["--device", "cpu", "--sizes", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bench.gpu: --sizes 1 need 1,000,000 distinct rows; 20 members")


def test_a_bad_flag_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu.main(["--sizes", "1,x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bench.gpu: --sizes '1,x': expected positive whole numbers separated by commas"]
