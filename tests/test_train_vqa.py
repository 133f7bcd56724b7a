"""The VQA task through train.py's flow on the real composed config (in-process, shrunk data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite.run import run
from tests.conftest import metrics_one_process_and_ddp

SMALL = ["data.num_images.train=16", "data.num_images.val=4", "data.num_images.test=4", "data.batch_size=16",
         "data.eval_batch_size=16", "model.dim=32", "model.attention_dim=16", "model.embed_dim=16"]


def small_vqa2_cfg(make_cfg, root: Path, *overrides: str):
    """The san_vqa2 preset, shrunk, on a VQA v2 fixture in the real format written to ``root``."""
    from tests.datamodules.test_vqa_v2 import SPLIT, write_vqa

    write_vqa(root)
    return make_cfg("experiment=san_vqa2", f"data.root={root}", f"data.splits={{train: {SPLIT}, val: {SPLIT}, "
                    f"test: {SPLIT}}}", "model.encoder.pretrained=false", "model.encoder.arch=resnet18",
                    "model.encoder.grid_size=2",
                    "data.image_size=64", "model.dim=16", "model.attention_dim=8", "model.embed_dim=8",
                    "data.batch_size=2", "data.eval_batch_size=4", "trainer.fast_dev_run=true",
                    "trainer.precision=32-true", "data.top_k=3", *overrides)


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_fast_dev_run(make_cfg, hops):
    metrics = run(make_cfg("task=vqa", f"model.hops={hops}", "trainer.fast_dev_run=true", *SMALL))
    assert {"test/acc", "test/acc_non_relational", "test/acc_relational"} <= set(metrics)
    per_type = {f"test/acc_{t}" for t in ("shape", "horizontal", "vertical", "closest", "farthest", "count")}
    assert per_type <= set(metrics) and all(0 <= metrics[key] <= 1 for key in per_type)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    if hops:
        assert {f"test/attention_correctness_hop{h + 1}" for h in range(hops)} <= set(metrics)
        assert 0 < metrics["test/attention_correctness_uniform"] < 1


def test_attention_supervision_trains_through_train_py_and_is_refused_on_vqa_v2(make_cfg, tmp_path):
    metrics = run(make_cfg("task=vqa", "model.hops=2", "model.attention_supervision=1.0", "trainer.max_epochs=1",
                           "trainer.limit_val_batches=1", *SMALL))
    assert metrics["train/attention_supervision_epoch"] > 0 and "test/acc" in metrics
    cfg = small_vqa2_cfg(make_cfg, tmp_path, "model.attention_supervision=1.0")
    with pytest.raises(ValueError, match="attention_supervision.*Sort-of-CLEVR"):
        run(cfg)


def test_curriculum_options_run_through_train_py(make_cfg):
    metrics = run(make_cfg("task=vqa", "model.hops=1", "data.curriculum_types=[[shape],[shape,horizontal]]",
                           "data.curriculum_questions=[16,16]", "trainer.max_epochs=1", "trainer.limit_val_batches=1",
                           *SMALL))
    assert "test/acc" in metrics and metrics["train/loss_epoch"] > 0


def test_fit_writes_the_hop_figure(make_cfg):
    cfg = make_cfg("task=vqa", *SMALL, "trainer.max_epochs=1", "trainer.limit_val_batches=1", "test=false")
    run(cfg)
    figure = next((Path(cfg.paths.output_dir) / "figures" / "val_hops").glob("*.png"))
    assert figure.stat().st_size > 5000


def test_san_vqa2_preset_on_the_real_format_scores_the_official_accuracy(make_cfg, tmp_path):
    cfg = small_vqa2_cfg(make_cfg, tmp_path)
    assert cfg.data.source == "vqa2" and cfg.model.encoder._target_.endswith("ResNetGridEncoder")
    metrics = run(cfg)
    assert 0.0 <= metrics["test/vqa_acc"] <= 1.0 and "test/vqa_acc_yes_no" in metrics


@pytest.mark.timeout(600)
def test_ddp_test_metrics_equal_one_process_metrics(tmp_path):
    """Accuracy per question kind and attention correctness per hop, averaged over two CPU ranks, equal the
    one-process figures on the same checkpoint and test questions (80 questions: 40 per rank, no padding)."""
    common = ["task=vqa", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.precision=32-true",
              "trainer.enable_progress_bar=false", *SMALL, "data.num_images.test=8", "data.eval_batch_size=8"]
    keys = ("test/acc", "test/acc_non_relational", "test/acc_relational", "test/acc_shape", "test/acc_count",
            "test/attention_correctness_hop1",
            "test/attention_correctness_hop2", "test/attention_correctness_uniform")
    metrics = metrics_one_process_and_ddp(common, keys, tmp_path, ("trainer.limit_train_batches=3",))
    assert 0 < metrics["single"]["test/attention_correctness_uniform"] < 1
    assert metrics["ddp"] == pytest.approx(metrics["single"], abs=1e-6)
