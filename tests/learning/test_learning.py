"""The learning tier: every task trains from its real composed config for a short, fixed budget and must clear a
bar set well below what it reaches (benchmarks/results/learning_tier.md has the measured values), so a change that
breaks learning (a flipped sign, a mask applied the wrong way, a detached gradient) fails here.

    make test-learning        # pytest -m learning; .ci/run runs it after the fast tests
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.learning

Metrics = dict[str, float]
# task -> (train.py overrides: the budget, [(what is checked, the check)])
TIER: dict[str, tuple[list[str], list[tuple[str, Callable[[Metrics], bool]]]]] = {
    "stn": (["trainer.max_epochs=4"], [
        ("test error below 25%", lambda m: m["test/error"] < 0.25),
        ("the sampled region covers the digit better than the whole image",
         lambda m: m["test/iou"] > m["test/iou_identity"] + 0.02),
    ]),
    "captioning": (["trainer.max_epochs=2"], [
        ("CIDEr-D above 1.0", lambda m: m["test/cider"] > 1.0),
        ("BLEU-4 above 0.25", lambda m: m["test/bleu4"] > 0.25),
        ("attention on the named object at least twice a uniform map's",
         lambda m: m["test/attention_correctness"] > 2 * m["test/attention_correctness_uniform"]),
    ]),
    "video_captioning": (["trainer.max_epochs=4"], [
        ("CIDEr-D above 0.6", lambda m: m["test/cider"] > 0.6),
        ("BLEU-4 above 0.1", lambda m: m["test/bleu4"] > 0.1),
    ]),
    "vqa": (["trainer.max_epochs=2"], [   # the shape-first curriculum's stage: shape questions only
        ("shape questions above 58% (chance: 50%)", lambda m: m["test/acc_shape"] > 0.58),
        ("hop 1's attention on the object asked about at least twice a uniform map's",
         lambda m: m["test/attention_correctness_hop1"] > 2 * m["test/attention_correctness_uniform"]),
    ]),
    "nmt": (["trainer.max_epochs=3"], [
        ("SacreBLEU above 80", lambda m: m["test/bleu"] > 80),
        ("perplexity below 1.5", lambda m: m["test/perplexity"] < 1.5),
    ]),
    "draw": (["trainer.max_epochs=3"], [
        ("NLL bound below 185 nats (drawing the mean digit: about 205)", lambda m: m["test/nll_bound"] < 185),
        ("the latents carry what the encoder read: KL above 4 nats", lambda m: m["test/kl"] > 4),
    ]),
}


def logged_test_metrics(run_dir: Path) -> Metrics:
    """The last logged value of every test/ metric of a run's CSV log."""
    metrics: Metrics = {}
    for row in csv.DictReader(open(run_dir / "csv" / "metrics.csv")):
        metrics.update({key: float(value) for key, value in row.items() if key.startswith("test/") and value})
    return metrics


@pytest.mark.timeout(900)
@pytest.mark.parametrize("task", list(TIER))
def test_the_task_learns_within_its_budget(task, tmp_path):
    budget, bars = TIER[task]
    done = run_cli("train.py", f"task={task}", "trainer=cpu", "logger=csv", "trainer.enable_progress_bar=false",
                   *budget, "hydra.run.dir=run", cwd=tmp_path, timeout=850)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = logged_test_metrics(tmp_path / "run")
    failed = [what for what, check in bars if not check(metrics)]
    assert not failed, f"{task} did not learn: {failed}; test metrics {metrics}"
