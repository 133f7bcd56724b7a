"""The VQA task through train.py's flow on the real composed config (in-process, shrunk data)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from suite.run import run

SMALL = ["data.num_images.train=16", "data.num_images.val=4", "data.num_images.test=4", "data.batch_size=16",
         "data.eval_batch_size=16", "model.dim=32", "model.attention_dim=16", "model.embed_dim=16"]


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_fast_dev_run(make_cfg, hops):
    metrics = run(make_cfg("task=vqa", f"model.hops={hops}", "trainer.fast_dev_run=true", *SMALL))
    assert {"test/acc", "test/acc_non_relational", "test/acc_relational"} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    if hops:
        assert {f"test/attention_correctness_hop{h + 1}" for h in range(hops)} <= set(metrics)
        assert 0 < metrics["test/attention_correctness_uniform"] < 1


def test_fit_writes_the_hop_figure(make_cfg):
    cfg = make_cfg("task=vqa", *SMALL, "trainer.max_epochs=1", "trainer.limit_val_batches=1", "test=false")
    run(cfg)
    figure = next((Path(cfg.paths.output_dir) / "figures" / "val_hops").glob("*.png"))
    assert figure.stat().st_size > 5000
