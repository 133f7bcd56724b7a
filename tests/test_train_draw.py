"""task=draw through train.py's flow, predict.py and eval.py: both modes, every read/write switch, the logged bound and
figures, the importance-weighted bound, DDP, and what a user can get wrong."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from datamodules.digits import load_mnist5k
from suite.predict import run_prediction
from suite.run import run
from tasks.prediction.inputs import InputError
from tests.conftest import metrics_one_process_and_ddp, raises_from_target, run_cli
from tests.test_predict import predict_config
from tests.wandb_records import logged_history_keys

SMALL = ["model.steps=4", "model.encoder_size=32", "model.decoder_size=32", "model.latent_size=8",
         "data.batch_size=16"]
SHORT = [*SMALL, "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1"]
CLASSIFY = ["experiment=draw_classify_cluttered", "model.read_size=6"]


@pytest.mark.parametrize("overrides", [
    [], ["model.read=full", "model.write=full"], ["model.steps=1", "model.read=full", "model.write=full"],
    ["model.read=full"], ["data.binarize=threshold"], CLASSIFY, [*CLASSIFY, "data.distortion=rts"],
], ids=["attention", "full", "vae", "full-read", "threshold", "classify-cluttered", "classify-rts"])
def test_fast_dev_run(make_cfg, overrides):
    metrics = run(make_cfg("task=draw", "trainer.fast_dev_run=true", *SMALL, *overrides))
    if "experiment=draw_classify_cluttered" in overrides:
        assert {"train/loss", "val/error", "test/error", "test/iou", "test/iou_identity"} <= set(metrics)
        assert 0.0 <= metrics["test/iou"] <= 1.0
    else:
        assert {"train/loss", "val/nll_bound", "test/nll_bound", "test/kl", "test/reconstruction"} <= set(metrics)
        assert metrics["test/nll_bound"] == pytest.approx(metrics["test/kl"] + metrics["test/reconstruction"])
    assert all(np.isfinite(v) for v in metrics.values())


def logged(run_dir: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))


def test_generate_logs_the_bound_its_terms_the_importance_bound_and_three_figures(make_cfg):
    cfg = make_cfg("task=draw", *SHORT, "model.importance_samples=8", "trainer.limit_test_batches=2")
    metrics = run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    columns = {key for row in logged(run_dir) for key, value in row.items() if value}
    assert {"train/loss_epoch", "train/kl_epoch", "val/nll_bound", "val/kl", "val/reconstruction",
            "test/nll_bound", "test/nll_iw"} <= columns
    # 8 importance samples bound -log p(x) at least as tightly as the ELBO (up to the estimate's noise)
    assert metrics["test/nll_iw"] < metrics["test/nll_bound"] + 0.5
    for key in ("val_canvas_steps", "val_read_windows", "val_samples"):
        pngs = list((run_dir / "figures" / key).glob("*.png"))
        assert pngs and pngs[0].stat().st_size > 1000, key


def test_full_read_has_no_read_window_figure(make_cfg):
    cfg = make_cfg("task=draw", *SHORT, "model.read=full", "model.write=full")
    run(cfg)
    figures = Path(cfg.paths.output_dir) / "figures"
    assert (figures / "val_canvas_steps").is_dir() and not (figures / "val_read_windows").exists()


def test_classify_logs_error_and_where_it_looked_with_the_glimpse_figure(make_cfg):
    cfg = make_cfg("task=draw", *SHORT, *CLASSIFY)
    metrics = run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    columns = {key for row in logged(run_dir) for key, value in row.items() if value}
    assert {"train/loss_epoch", "train/acc", "val/error", "val/iou", "val/iou_identity", "test/error"} <= columns
    assert 0.0 <= metrics["test/error"] <= 1.0 and metrics["test/iou_identity"] < 0.2   # a 60x60 canvas, one digit
    assert list((run_dir / "figures" / "val_glimpses").glob("*.png"))


def test_bad_data_options_are_named(make_cfg):
    with raises_from_target(ValueError, "unknown data.binarize 'maybe'; valid choices: none, threshold, stochastic"):
        run(make_cfg("task=draw", *SHORT, "data.binarize=maybe"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A one-epoch checkpoint of each mode, trained once for the module."""
    from tests.conftest import FAST, compose_config

    root = tmp_path_factory.mktemp("draw")
    paths = {}
    for mode, extra in (("generate", []), ("classify", CLASSIFY)):
        cfg = compose_config([*FAST, "task=draw", *SHORT, *extra, "test=false"], root / mode)
        run(cfg)
        paths[mode] = root / mode / "checkpoints" / "last.ckpt"
    return paths


def test_predict_draws_samples_with_step_figures_and_a_grid(checkpoints, tmp_path):
    cfg = predict_config(checkpoints["generate"], "placeholder", tmp_path / "out", samples=6, seed=3)
    cfg.input = None
    records = run_prediction(cfg)
    assert [r["input"] for r in records] == [f"sample_{i:04d}" for i in range(6)]
    assert all(0.0 <= r["ink"] <= 1.0 and Path(r["figure"]).stat().st_size > 1000 for r in records)
    assert (tmp_path / "out" / "figures" / "samples_000.png").stat().st_size > 1000
    again = run_prediction(predict_config(checkpoints["generate"], "placeholder", tmp_path / "again", samples=6,
                                          seed=3))
    assert [r["ink"] for r in again] == [r["ink"] for r in records]          # the seed fixes the samples


def test_predict_on_a_generator_without_samples_says_what_to_give(checkpoints, tmp_path):
    with pytest.raises(InputError, match="takes no input: give samples=N"):
        run_prediction(predict_config(checkpoints["generate"], "placeholder", tmp_path / "out"))


def test_predict_classifies_a_digit_image_with_its_glimpse_figure(checkpoints, tmp_path):
    digits, _ = load_mnist5k()
    canvas = np.zeros((60, 60), dtype=np.uint8)
    canvas[10:38, 20:48] = digits[0]
    Image.fromarray(canvas).save(tmp_path / "digit.png")
    records = run_prediction(predict_config(checkpoints["classify"], tmp_path / "digit.png", tmp_path / "out"))
    assert records[0]["class"] in [str(d) for d in range(10)] and 0.0 < records[0]["probability"] <= 1.0
    assert len(records[0]["last_window"]) == 4 and Path(records[0]["figure"]).stat().st_size > 1000
    cfg = predict_config(checkpoints["classify"], "placeholder", tmp_path / "none")
    cfg.input = None
    with pytest.raises(InputError, match="input=... is required: .* is a DRAW glimpse classification model"):
        run_prediction(cfg)


def test_eval_py_prints_and_writes_the_bound(checkpoints, tmp_path):
    result = run_cli("eval.py", f"ckpt_path={checkpoints['generate']}", "logger=csv", "trainer=cpu",
                     "data.num_workers=0", "trainer.limit_test_batches=2", "model.importance_samples=2",
                     "hydra.run.dir=eval", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"test/nll_bound", "test/kl", "test/reconstruction", "test/nll_iw"} <= set(metrics)


@pytest.mark.timeout(600)
def test_ddp_test_bound_matches_one_process(tmp_path):
    """Two CPU ranks test half the digits each: the bound over all of them equals one process's up to the noise of
    the z drawn (each batch draws from a generator seeded by its index, and the ranks' batches differ)."""
    common = ["task=draw", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.enable_progress_bar=false",
              *SMALL, "data.test_per_class=20"]
    keys = ("test/nll_bound", "test/kl", "test/reconstruction")
    metrics = metrics_one_process_and_ddp(common, keys, tmp_path, ("trainer.limit_train_batches=3",))
    assert metrics["ddp"]["test/kl"] == pytest.approx(metrics["single"]["test/kl"], rel=0.05)
    assert metrics["ddp"]["test/nll_bound"] == pytest.approx(metrics["single"]["test/nll_bound"], rel=0.01)


def test_seed_makes_cpu_runs_repeat_exactly(make_cfg):
    """The z of training come from torch's global generator (seeded; carried by checkpoints for resume,
    tests/test_resume.py), the binarisation from each item's own: the same seed gives the same run."""
    first = run(make_cfg("task=draw", *SHORT, "seed=5"))
    second = run(make_cfg("task=draw", *SHORT, "seed=5"))
    assert first["train/loss_epoch"] == second["train/loss_epoch"]
    assert first["val/nll_bound"] == second["val/nll_bound"]


def test_predict_py_samples_from_the_command_line(checkpoints, tmp_path):
    done = run_cli("predict.py", f"ckpt_path={checkpoints['generate']}", "samples=3", "hydra.run.dir=out",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len((tmp_path / "out" / "predictions.jsonl").read_text().splitlines()) == 3
    missing = run_cli("predict.py", f"ckpt_path={checkpoints['classify']}", "hydra.run.dir=none", cwd=tmp_path)
    assert missing.returncode != 0 and "predict.py: input=... is required" in missing.stderr


def test_wandb_offline_run_holds_the_bound_and_the_three_figures(tmp_path):
    args = ["task=draw", "trainer=cpu", "logger=wandb", "data.num_workers=0", "trainer.enable_progress_bar=false",
            *SHORT, "test=false"]
    done = run_cli("train.py", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    run = next(tmp_path.glob("outputs/draw/*/wandb/offline-run-*"))
    keys = logged_history_keys(next(run.glob("run-*.wandb")))
    assert {"val/nll_bound", "val/kl", "val/reconstruction", "train/loss_epoch", "val/canvas_steps/filenames",
            "val/read_windows/filenames", "val/samples/filenames"} <= keys
    for name in ("canvas_steps", "read_windows", "samples"):
        assert list(run.glob(f"files/media/images/val/{name}_*.png")), name
