"""Smoke test of benchmarks/beam_search.py at a tiny size: the comparison passes and the tables have their columns."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "beam_search.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    """The benchmark script as a module (benchmarks/ is not a package), run on one thread."""
    spec = importlib.util.spec_from_file_location("benchmark_beam_search", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield module
    torch.set_num_threads(threads)
    del sys.modules[spec.name]


def table_headers(table: str) -> list[list[str]]:
    """The column names of each markdown table in the text (the beam table, then the greedy one)."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| batch |")]


def test_tiny_run_reports_identical_outputs_and_the_expected_columns(bench: ModuleType) -> None:
    report = bench.run([3], beam=2, max_len=5, repeats=1)
    assert report.identical
    (row,), (greedy,) = report.beam_rows, report.greedy_rows
    assert row.batch == 3 and row.beam == 2 and row.comparison.samples == 3
    assert row.comparison.mismatches == 0 and greedy.comparison.mismatches == 0
    assert len(row.lengths) == 3 and all(n <= 5 for n in row.lengths)
    assert table_headers(report.table) == [bench.BEAM_COLUMNS, bench.GREEDY_COLUMNS]
    assert "yes (0 of 3 differ)" in report.table
    for column in ["batch", "beam", "batched s", "per-sample s", "speed-up", "captions/s batched",
                   "identical outputs"]:
        assert column in bench.BEAM_COLUMNS


def test_compare_counts_a_different_caption(bench: ModuleType) -> None:
    decoder = bench.build_decoder()
    memory = bench.make_memory(2)
    hypotheses = bench.beam_search(decoder, memory, None, bench.BOS, bench.EOS, beam_size=2, max_len=5)
    changed = [bench.Hypothesis([*h.tokens], h.score + 1.0, h.attention, h.log_prob, h.finished)
               for h in hypotheses]
    changed[0].tokens.append(3)
    comparison = bench.compare(hypotheses, changed)
    assert comparison.mismatches == 2 and not comparison.identical
    assert comparison.cell() == "no (2 of 2 differ)"


def test_main_writes_the_table_and_exits_zero(bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "beam_search.md"
    assert bench.main(["--batch", "2", "--beam", "2", "--max-len", "4", "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "Command: python benchmarks/beam_search.py --batch 2" in text
    assert f"torch {torch.__version__}" in text and "| 2 | 2 |" in text


def test_fused_score_run_compiles_the_score_and_keeps_outputs_identical(bench: ModuleType, monkeypatch) -> None:
    """--fused-score: both paths score through the compiled fused kernel (forced on whatever this CPU's capability)
    and batched still equals per-sample."""
    import modules.additive_score_cpu as score_cpu

    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (torch.backends.cpu.get_cpu_capability(),))
    calls = []
    original = score_cpu.compiled_score
    monkeypatch.setattr(score_cpu, "compiled_score", lambda: calls.append(1) or original())
    report = bench.run([3], beam=2, max_len=5, repeats=1, fused_score=True)
    assert report.identical and calls
