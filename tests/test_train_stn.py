"""train.py's flow on the real composed config, in-process: every config combination that matters for STN."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import open_dict

from suite.run import run
from tests.conftest import raises_from_target
from tests.idx_fixtures import write_raw

SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1", "data.batch_size=16"]


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.arch=st_cnn", "data.distortion=rts"],
        ["model.arch=cnn", "data.distortion=rts"],
        ["model.arch=st_cnn", "data.distortion=cluttered", "model.st_out_size=40", "model.localisation=regression",
         "model.loc_init_scale=1.0", "model.convs_per_stage=1", "model.kernel_size=5"],
        ["model.arch=st_cnn", "data.distortion=cluttered", "model.localisation=heatmap", "model.loc_init_scale=0.5"],
        ["model.arch=st_cnn", "data.distortion=r"],
        ["model.arch=st_cnn", "trainer.precision=bf16-mixed", "model.channels_last=true"],
    ],
    ids=["st_cnn-rts", "cnn-rts", "st_cnn-regression-5x5-cluttered", "st_cnn-heatmap-cluttered", "st_cnn-r",
         "bf16-channels_last"],
)
def test_fast_dev_run(make_cfg, overrides):
    cfg = make_cfg("task=stn", "trainer.fast_dev_run=true", *overrides)
    metrics = run(cfg)
    assert {"train/loss", "val/loss", "val/error", "test/error", "test/acc"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    if "model.arch=st_cnn" in overrides:
        assert 0.0 <= metrics["test/iou"] <= 1.0


def test_fit_then_test_the_best_checkpoint_with_csv_metrics_and_figure(make_cfg, tmp_path):
    cfg = make_cfg("task=stn", *SHORT)
    metrics = run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("epoch") for name in checkpoints)
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {"train/loss_epoch", "train/acc", "val/error", "val/iou", "val/iou_identity", "test/error",
            "test/iou"} <= logged
    test_row = [row for row in rows if row.get("test/error")][-1]
    assert float(test_row["test/error"]) == pytest.approx(metrics["test/error"])
    figures = list((run_dir / "figures" / "val_transformer").glob("*.png"))
    assert figures and figures[0].stat().st_size > 1000
    hparams = (run_dir / "csv" / "hparams.yaml").read_text()
    assert "params/total" in hparams and "st_cnn" in hparams


def test_seed_makes_cpu_runs_repeat_exactly(make_cfg):
    first = run(make_cfg("task=stn", "seed=7", *SHORT))
    second = run(make_cfg("task=stn", "seed=7", *SHORT))
    assert first["val/loss"] == second["val/loss"] and first["train/loss_epoch"] == second["train/loss_epoch"]


class StopAfterFirstEpoch(pl.Callback):
    """Interrupt a run after its first epoch (its checkpoints already written), as a killed job would be."""

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        trainer.should_stop = True


def test_resume_from_last_checkpoint_continues_the_same_run(make_cfg, tmp_path):
    two_epochs = ["trainer.max_epochs=2", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                  "data.batch_size=16", "test=false", "callbacks.model_checkpoint.save_top_k=0",
                  "trainer.log_every_n_steps=1"]
    straight = make_cfg("task=stn", *two_epochs)
    straight.paths.output_dir = str(tmp_path / "straight")
    run(straight)
    interrupted = make_cfg("task=stn", *two_epochs)
    interrupted.paths.output_dir = str(tmp_path / "interrupted")
    with open_dict(interrupted):
        interrupted.callbacks.stop = {"_target_": f"{__name__}.StopAfterFirstEpoch"}
    run(interrupted)
    first = torch.load(tmp_path / "interrupted" / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 3
    resumed = make_cfg("task=stn", *two_epochs, f"ckpt_path={tmp_path / 'interrupted' / 'checkpoints' / 'last.ckpt'}")
    resumed.paths.output_dir = str(tmp_path / "resumed")
    run(resumed)
    a = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    rows = csv.DictReader(open(tmp_path / "resumed" / "csv" / "metrics.csv"))
    assert sorted(int(row["step"]) for row in rows if row.get("train/loss_step")) == [3, 4, 5]  # only the 2nd epoch
    assert a["global_step"] == b["global_step"] == 6
    assert a["epoch"] == b["epoch"]
    for name, tensor in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][name], tensor, rtol=0, atol=0, msg=name)
    assert a["lr_schedulers"][0]["_last_lr"] == b["lr_schedulers"][0]["_last_lr"]


def test_unknown_architecture_lists_the_choices(make_cfg):
    with raises_from_target(ValueError, r"model.arch='vit'.*\['cnn', 'st_cnn'\]"):
        run(make_cfg("task=stn", "model.arch=vit", "trainer.fast_dev_run=true"))


def test_tensorboard_logger_gets_scalars_and_the_image(make_cfg):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = make_cfg("task=stn", "logger=tensorboard", *SHORT)
    run(cfg)
    events = EventAccumulator(str(Path(cfg.paths.output_dir) / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert {"val/error", "val/iou", "test/error"} <= set(events.Tags()["scalars"])
    assert "val/transformer" in events.Tags()["images"]


@pytest.mark.parametrize("experiment", ["stn_rts_mnist", "stn_cluttered_mnist"])
def test_experiment_presets_run_on_mnist_idx_files(make_cfg, tmp_path, experiment):
    write_raw(tmp_path / "mnist" / "MNIST" / "raw", n_train=60, n_test=20)
    cfg = make_cfg(f"experiment={experiment}", f"data.root={tmp_path / 'mnist'}", "data.val_per_class=1",
                   "trainer.fast_dev_run=true", "data.batch_size=8")
    assert cfg.data.source == "mnist" and cfg.model.arch == "st_cnn"
    metrics = run(cfg)
    assert "test/error" in metrics


def test_run_reports_where_the_run_directory_and_both_checkpoints_are(make_cfg, caplog):
    cfg = make_cfg("task=stn", *SHORT)
    with caplog.at_level("INFO", logger="suite.run"):
        run(cfg)
    text = caplog.text
    assert f"run directory: {cfg.paths.output_dir}" in text
    assert "checkpoints: best " in text and "last.ckpt" in text and "epoch000.ckpt" in text


@pytest.mark.slow
def test_compile_true_trains_and_tests(make_cfg):
    """torch.compile through train.py (inductor needs a C++ compiler; about 90 s on 2 CPU cores)."""
    metrics = run(make_cfg("task=stn", "compile=true", *SHORT))
    assert 0.0 <= metrics["test/error"] <= 1.0
