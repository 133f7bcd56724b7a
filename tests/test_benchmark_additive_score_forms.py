"""benchmarks/additive_score_forms.py at a tiny size: both forms really run, the table has a row for each, and the
CPU's form choice (EXP_FORM_CPU) is restored afterwards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import modules.additive_score_cpu as score_cpu

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "additive_score_forms.py"


def test_tiny_run_times_both_forms_and_restores_the_choice(tmp_path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("benchmark_additive_score_forms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    default = score_cpu.EXP_FORM_CPU
    seen = []   # (the form the benchmark selected when precompute ran, the form precompute used)
    original = score_cpu.CPUAdditiveAttention.precompute

    def spy(self, keys):
        precomputed = original(self, keys)
        seen.append((bool(score_cpu.EXP_FORM_CPU), isinstance(precomputed, score_cpu.ExpFormKeys)))
        return precomputed

    monkeypatch.setattr(score_cpu.CPUAdditiveAttention, "precompute", spy)
    threads = torch.get_num_threads()
    out = tmp_path / "forms.md"
    try:
        module.main(["--batch", "2", "--beam", "2", "--repeats", "1", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert score_cpu.EXP_FORM_CPU == default
    # Each form, warm-up + 1 timed call of each part: score 2, batched search 2, per-sample loop 2 x 2 samples.
    assert all(selected == used for selected, used in seen), seen
    assert sum(used for _, used in seen) == 8 and sum(not used for _, used in seen) == 8
    text = out.read_text()
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
             if line.startswith("| ") and "---" not in line]
    assert [row[0] for row in table] == ["form", "tanh", "exp"]
    for _, score_ms, batched_s, per_sample_s, speed_up in table[1:]:
        assert float(score_ms) > 0 and float(batched_s) > 0 and float(per_sample_s) > 0
        assert float(speed_up.rstrip("x")) == pytest.approx(float(per_sample_s) / float(batched_s), rel=0.1)
    assert "Command: python benchmarks/additive_score_forms.py --batch 2" in text
    assert f"capability is {torch.backends.cpu.get_cpu_capability()}" in text
