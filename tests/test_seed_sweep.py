"""benchmarks/seed_sweep.py: configurations are parsed as a user writes them, every run's metrics reach the table,
and the summary gives the mean and spread per configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import seed_sweep


def test_a_configuration_is_a_name_and_space_separated_overrides():
    name, overrides = seed_sweep.parse_config("staged=data.curriculum_types=[[shape],[count]] data.x=[1,2]")
    assert name == "staged" and overrides == ["data.curriculum_types=[[shape],[count]]", "data.x=[1,2]"]
    assert seed_sweep.parse_config("defaults=") == ("defaults", [])
    with pytest.raises(SystemExit, match="NAME=OVERRIDES"):
        seed_sweep.parse_config("model.hops")


def test_the_summary_gives_mean_spread_and_range_and_names_failed_runs():
    jobs = [seed_sweep.Job("a", seed, [], Path("."), wall_s=10.0, metrics={"test/acc": value})
            for seed, value in ((0, 0.5), (1, 0.7))]
    jobs.append(seed_sweep.Job("b", 0, ["model.hops=0"], Path("."), error="exit 1: ValueError: bad option"))
    lines = seed_sweep.table(jobs, [("a", []), ("b", ["model.hops=0"])], ["test/acc"], percent=True)
    assert "| a | 0 | 50.0 | 10 |" in lines and "| a | 1 | 70.0 | 10 |" in lines
    assert any("| b | 0 | FAILED: exit 1: ValueError: bad option" in line for line in lines)
    assert "| a | `(defaults)` | 2 | 60.0 ± 14.1 (50.0 - 70.0) |" in lines      # stdev of 50, 70 = 14.1
    assert "| b | `model.hops=0` | 0 | - |" in lines


def test_a_small_sweep_runs_train_py_and_reads_its_metrics(tmp_path):
    out = tmp_path / "sweep.md"
    seed_sweep.main(["--task", "vqa", "--seeds", "3", "--config", "baseline=model.hops=0", "--metrics", "test/acc",
                     "test/not_logged", "--runs-dir", str(tmp_path / "runs"), "--out", str(out),
                     "data.num_images={train:16,val:4,test:4}", "data.questions_per_image=2", "trainer.max_epochs=1"])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| baseline | 3 |")]
    assert len(rows) == 1
    accuracy = float(rows[0].split("|")[3])
    assert 0.0 <= accuracy <= 1.0 and rows[0].split("|")[4].strip() == "-"      # a metric never logged: "-"
