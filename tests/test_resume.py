"""A run killed with SIGKILL in the middle of an epoch and resumed from its last step checkpoint ends exactly where
the uninterrupted run ends: the same step, the same optimizer and schedule state, bit-identical weights (CPU).

Every case runs ``train.py`` three times as a user would: straight through; again, killed (SIGKILL, from here) as
soon as its first step checkpoint is on disk; and resumed from that checkpoint. The resumed run must train only the
steps that were left (counted from its per-step log), so a run that ignored ``ckpt_path`` and started over fails.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, run_cli

EPOCHS, BATCHES, EVERY = 2, 12, 2          # 24 steps; a step checkpoint every 2 of them
COMMON = ["trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.enable_progress_bar=false",
          f"trainer.max_epochs={EPOCHS}", f"trainer.limit_train_batches={BATCHES}", "trainer.limit_val_batches=1",
          "trainer.log_every_n_steps=1", "test=false", f"checkpoint_every_n_steps={EVERY}"]
CASES = {
    "stn": ["task=stn", "data.batch_size=32"],
    "captioning_hard": ["task=captioning", "model.attention=hard", "data.num_images.train=64",
                        "data.num_images.val=8", "data.num_images.test=8", "data.batch_size=16",
                        "model.hidden_dim=64", "model.embed_dim=32", "model.attention_dim=32"],
    "draw": ["task=draw", "data.batch_size=32", "model.steps=4", "model.encoder_size=32", "model.decoder_size=32",
             "model.latent_size=8"],
    "nmt": ["task=nmt", "data.sizes.train=600", "data.sizes.val=16", "data.sizes.test=16", "data.batch_size=16",
            "model.hidden_dim=32", "model.embed_dim=32", "model.attention_dim=32"],
}


def checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def run_killed_after_first_step_checkpoint(args: list[str], run_dir: Path, timeout: float = 300) -> dict:
    """Start train.py, SIGKILL it once ``last.ckpt`` exists, and return that checkpoint (read after the kill)."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    last = run_dir / "checkpoints" / "last.ckpt"
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *args, f"hydra.run.dir={run_dir}"],
                               cwd=run_dir.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate()
    assert process.returncode == -signal.SIGKILL, f"train.py ended before it was killed: {stderr.decode()[-2000:]}"
    return checkpoint(last)


def trained_steps(run_dir: Path) -> list[int]:
    """The steps the run logged a training loss for (log_every_n_steps=1: every step it trained)."""
    rows = csv.DictReader(open(run_dir / "csv" / "metrics.csv"))
    return [int(row["step"]) for row in rows if row.get("train/loss_step")]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_mid_epoch_then_resume_equals_the_uninterrupted_run(case, tmp_path):
    args = [*COMMON, *CASES[case]]
    straight = run_cli("train.py", *args, "hydra.run.dir=straight", cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-3000:]
    expected = checkpoint(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    assert expected["global_step"] == EPOCHS * BATCHES

    killed = run_killed_after_first_step_checkpoint(args, tmp_path / "killed")
    at = killed["global_step"]
    assert 0 < at < BATCHES and at % EVERY == 0, f"the kill should leave a mid-epoch step checkpoint, got step {at}"

    resumed = run_cli("train.py", *args, f"ckpt_path={tmp_path / 'killed' / 'checkpoints' / 'last.ckpt'}",
                      "hydra.run.dir=resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = checkpoint(tmp_path / "resumed" / "checkpoints" / "last.ckpt")

    # only the steps that were left, then the same end state as the run that was never killed
    assert len(trained_steps(tmp_path / "resumed")) == EPOCHS * BATCHES - at
    assert final["global_step"] == expected["global_step"] and final["epoch"] == expected["epoch"]
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(final["state_dict"][name], tensor), f"{case}: weight {name} differs after the resume"
    for before, after in zip(expected["optimizer_states"][0]["state"].values(),
                             final["optimizer_states"][0]["state"].values(), strict=True):
        assert all(torch.equal(before[key], after[key]) for key in before)
    assert expected["lr_schedulers"][0]["_last_lr"] == final["lr_schedulers"][0]["_last_lr"]


@pytest.mark.timeout(600)
def test_ckpt_path_last_resumes_the_newest_run_of_the_task_in_the_same_wandb_run(tmp_path):
    """ckpt_path=last: the newest outputs/<task>/*/checkpoints/last.ckpt, trained on from where it stopped, logged
    into the same W&B run (offline here: the same run id)."""
    args = ["task=stn", "trainer=cpu", "logger=[wandb,csv]", "data.num_workers=0", "trainer.enable_progress_bar=false",
            "trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "trainer.log_every_n_steps=1",
            "data.batch_size=16", "test=false"]
    other_task = ["task=nmt", *args[1:-2], "data.sizes.train=64", "test=false"]
    older = run_cli("train.py", *args, "trainer.max_epochs=1", "hydra.run.dir=outputs/stn/older", cwd=tmp_path)
    assert older.returncode == 0, older.stderr[-3000:]
    first = checkpoint(tmp_path / "outputs" / "stn" / "older" / "checkpoints" / "last.ckpt")
    run_id = first["attention_suite"]["wandb_run_id"]
    assert run_id and list((tmp_path / "outputs" / "stn" / "older" / "wandb").glob(f"offline-run-*-{run_id}"))

    resumed = run_cli("train.py", *args, "trainer.max_epochs=2", "ckpt_path=last", "hydra.run.dir=outputs/stn/newer",
                      cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    newer = tmp_path / "outputs" / "stn" / "newer"
    assert f"ckpt_path=last: resuming {tmp_path / 'outputs' / 'stn' / 'older' / 'checkpoints' / 'last.ckpt'}" \
           f", continuing W&B run {run_id}" in resumed.stdout + resumed.stderr
    assert trained_steps(newer) == [3, 4, 5]                        # the second epoch only
    final = checkpoint(newer / "checkpoints" / "last.ckpt")
    assert final["global_step"] == 6 and final["attention_suite"]["wandb_run_id"] == run_id
    assert list((newer / "wandb").glob(f"offline-run-*-{run_id}"))  # the same run, continued

    missing = run_cli("train.py", *other_task, "trainer.max_epochs=1", "ckpt_path=last",
                      "hydra.run.dir=outputs/nmt/first", cwd=tmp_path)
    assert missing.returncode != 0 and "ckpt_path=last: no earlier run under" in missing.stderr


@pytest.mark.timeout(600)
def test_a_bad_checkpoint_is_a_named_error_in_train_and_eval(tmp_path):
    """Truncated, of another task, of an older format: train.py and eval.py say which file and what is wrong."""
    args = ["task=stn", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.enable_progress_bar=false",
            "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
            "data.batch_size=16", "test=false"]
    made = run_cli("train.py", *args, "hydra.run.dir=made", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    good = tmp_path / "made" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    state = checkpoint(good)
    older = tmp_path / "older.ckpt"
    torch.save({**state, "attention_suite": {**state["attention_suite"], "format": 1}}, older)

    cases = [
        ("train.py", [*args, f"ckpt_path={truncated}"], f"train.py: cannot read checkpoint {truncated}"),
        ("eval.py", [f"ckpt_path={truncated}"], f"eval.py: cannot read checkpoint {truncated}"),
        ("train.py", [*args, f"ckpt_path={older}"], f"train.py: {older} is a checkpoint of format 1"),
        ("eval.py", [f"ckpt_path={older}"], f"eval.py: {older} is a checkpoint of format 1"),
        ("train.py", ["task=nmt", *args[1:], f"ckpt_path={good}"],
         f"train.py: {good} is a stn checkpoint (tasks.stn.STNClassifier); it cannot resume task=nmt"),
    ]
    for script, arguments, message in cases:
        result = run_cli(script, *arguments, "hydra.run.dir=bad", cwd=tmp_path)
        assert result.returncode != 0 and message in result.stderr, (script, arguments, result.stderr[-2000:])
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
