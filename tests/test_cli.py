"""train.py as a user runs it: bad input, W&B offline, DDP on two CPU processes, multirun sweeps."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from tasks.stn import STNClassifier
from tests.conftest import run_cli
from tests.wandb_records import logged_config, logged_history_keys

TINY = ["trainer=cpu", "trainer.precision=32-true", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", "data.batch_size=16", "data.num_workers=0",
        "trainer.enable_progress_bar=false"]


def test_unknown_task_lists_the_valid_choices(tmp_path):
    result = run_cli("train.py", "task=translation_x", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'task/translation_x'" in result.stderr
    assert "stn" in result.stderr.split("Available options in 'task'")[1]


def test_unknown_option_names_the_key(tmp_path):
    result = run_cli("train.py", "model.archh=cnn", cwd=tmp_path)
    assert result.returncode != 0 and "archh" in result.stderr


def test_bad_data_root_names_the_path_and_the_files_expected(tmp_path):
    result = run_cli("train.py", "data.source=mnist", f"data.root={tmp_path / 'nowhere'}", *TINY, cwd=tmp_path)
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if "nowhere" in line]
    assert message and "train-images-idx3-ubyte" in result.stderr and "data.download=true" in result.stderr
    assert "numpy" not in result.stderr  # the error is raised where the file is looked for, not deep inside


def test_wandb_offline_run_contains_metrics_hparams_and_the_image_grid(tmp_path):
    result = run_cli("train.py", *TINY, "logger=wandb", cwd=tmp_path, env={"WANDB_MODE": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "logging offline" in result.stdout and "wandb sync" in result.stdout
    runs = list(tmp_path.glob("outputs/stn/*/wandb/offline-run-*"))
    assert len(runs) == 1
    log = next(runs[0].glob("run-*.wandb"))
    assert {"val/error", "val/iou", "train/loss_epoch", "test/error", "test/iou",
            "perf/train_samples_per_sec", "val/transformer/filenames"} <= logged_history_keys(log)
    config = logged_config(log)
    assert config["params/total"] > 100_000 and config["arch"] == "st_cnn"
    assert config["config"]["task_name"] == "stn" and config["config"]["data"]["distortion"] == "rts"
    images = list(runs[0].glob("files/media/images/val/transformer_*.png"))
    assert images and images[0].stat().st_size > 1000


@pytest.mark.timeout(600)
def test_ddp_two_cpu_processes_match_one_process_on_the_same_data(tmp_path):
    """Two ranks with batch b each average their gradients: the same update as one process with batch 2b."""
    common = [*TINY, "trainer.limit_train_batches=4", "model.dropout=0", "model.batch_norm=false",
              "trainer.limit_val_batches=2",
              "logger=wandb", "test=false"]
    (tmp_path / "single").mkdir()
    single = run_cli("train.py", *common, "data.batch_size=32", cwd=tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]
    (tmp_path / "ddp").mkdir()
    ddp = run_cli("train.py", *common, "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=16",
                  cwd=tmp_path / "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    run_dirs = list((tmp_path / "ddp" / "outputs" / "stn").iterdir())
    assert len(run_dirs) == 1, f"DDP made {len(run_dirs)} run directories"
    assert len(list(run_dirs[0].glob("wandb/offline-run-*"))) == 1, "DDP made more than one W&B run"
    weights, hparams = {}, {}
    for name in ("single", "ddp"):
        last = torch.load(next((tmp_path / name).glob("outputs/stn/*/checkpoints/last.ckpt")), weights_only=True)
        weights[name], hparams[name] = last["state_dict"], last["hyper_parameters"]
    assert hparams["single"] == hparams["ddp"]
    # the same seed builds the same initial weights: DDP must move them as far, the same way
    pl.seed_everything(42)
    initial = STNClassifier(**hparams["single"]).state_dict()
    keys = [key for key, value in initial.items() if value.is_floating_point()]
    flat = {name: torch.cat([weights[name][key].flatten() for key in keys]) for name in weights}
    start = torch.cat([initial[key].flatten() for key in keys])
    update = (flat["single"] - start).norm()
    assert update > 1e-3, "training did not move the weights"
    # Adam amplifies float noise on near-zero gradients, so the match is relative to the update, not bitwise
    assert (flat["ddp"] - flat["single"]).norm() < 0.01 * update


def test_multirun_sweep_gives_one_run_directory_and_wandb_run_per_job(tmp_path):
    result = run_cli("train.py", "-m", "model.arch=cnn,st_cnn", *TINY, "logger=wandb", "test=false",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in tmp_path.glob("outputs/multirun/stn/*/*") if p.is_dir())
    assert [job.name for job in jobs] == ["0", "1"]
    for job, arch in zip(jobs, ["cnn", "st_cnn"], strict=True):
        runs = list(job.glob("wandb/offline-run-*"))
        assert len(runs) == 1
        assert logged_config(next(runs[0].glob("run-*.wandb")))["arch"] == arch


def test_ddp_on_the_default_config_keeps_every_rank_on_the_same_parameters(tmp_path):
    """STN's default config (dropout, BatchNorm, the heatmap localiser) under two-process DDP: each rank draws its own
    dropout masks and normalises its own half-batch, and the averaged gradients still keep the ranks' parameters
    bit-identical, step after step."""
    folder = tmp_path / "ranks"
    done = run_cli("train.py", *TINY, "trainer.limit_train_batches=4", "trainer=ddp_cpu", "trainer.devices=2",
                   "logger=csv", "test=false", "+callbacks.probe._target_=tests.ddp_probe.SaveRankParameters",
                   f"+callbacks.probe.folder={folder}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(folder / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]
    initial = STNClassifier(**torch.load(next(tmp_path.glob("outputs/stn/*/checkpoints/last.ckpt")),
                                         weights_only=True)["hyper_parameters"])
    assert initial.hparams.dropout > 0 and initial.hparams.batch_norm   # the default config, not a simplified one
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), f"rank 1's {name} differs from rank 0's"
