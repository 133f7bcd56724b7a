"""benchmarks/stop_at_step.py: a run through train.py stops after the validation at the asked step (not at the
end of its epochs), and a bad step is refused."""

from __future__ import annotations

import csv

import pytest

from benchmarks import seed_sweep
from benchmarks.stop_at_step import StopAtStep


def test_a_run_stops_after_the_validation_at_the_step(tmp_path):
    # 32 questions / batch 4 = 8 steps per epoch, 3 epochs = 24 steps; stop at step 10 (validations at 5 and 10)
    seed_sweep.main(["--task", "vqa", "--seeds", "0", "--config", "probe=", "--metrics", "val/acc",
                     "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "sweep.md"),
                     "data.num_images={train:16,val:4,test:4}", "data.questions_per_image=2", "data.batch_size=4",
                     "data.curriculum_questions=0", "trainer.max_epochs=3",
                     "+callbacks.stop._target_=benchmarks.stop_at_step.StopAtStep", "+callbacks.stop.step=10",
                     "trainer.check_val_every_n_epoch=null", "trainer.val_check_interval=5"])
    (metrics_csv,) = (tmp_path / "runs").glob("*/probe_seed0/csv/metrics.csv")
    with open(metrics_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    val_steps = sorted({int(row["step"]) for row in rows if row.get("val/acc")})
    # logged at step - 1: after the 5th and the 10th batch; without the stop also after the 15th and the 20th
    assert val_steps == [4, 9]
    assert max(int(row["step"]) for row in rows) <= 10 and "| probe | 0 |" in (tmp_path / "sweep.md").read_text()


def test_a_step_below_one_is_refused():
    with pytest.raises(ValueError, match="step must be >= 1"):
        StopAtStep(0)
