"""benchmarks/additive_score_forms.py at a tiny size: both forms really run, the table has a row for each, and the
CPU's form choice (EXP_FORM_CPU) is restored afterwards."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

import modules.attention as attention_module

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "additive_score_forms.py"


def test_tiny_run_times_both_forms_and_restores_the_choice(tmp_path, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location("benchmark_additive_score_forms", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    default = attention_module.EXP_FORM_CPU
    seen = []
    original = attention_module.AdditiveAttention.precompute
    monkeypatch.setattr(attention_module.AdditiveAttention, "precompute",
                        lambda self, keys: (lambda p: seen.append(p.exponential) or p)(original(self, keys)))
    threads = torch.get_num_threads()
    out = tmp_path / "forms.md"
    try:
        module.main(["--batch", "2", "--beam", "2", "--repeats", "1", "--threads", "1", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert attention_module.EXP_FORM_CPU == default
    assert True in seen and False in seen                     # each form was used
    text = out.read_text()
    rows = [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["form", "tanh", "exp"]
    assert "Command: python benchmarks/additive_score_forms.py --batch 2" in text
    assert f"capability is {torch.backends.cpu.get_cpu_capability()}" in text
