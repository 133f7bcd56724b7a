"""Epoch-end metric helpers: the update decision, and computing an un-updated metric without a warning.
(The multi-rank case is tested end to end in tests/test_train_vqa.py, test_ddp_test_metrics_equal_one_process_metrics.)
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import torch
from torchmetrics import MeanMetric

from tasks.epoch_metrics import compute_quietly, updated_on_any_rank


def test_update_decision_and_quiet_compute_on_one_process():
    module = SimpleNamespace(device=torch.device("cpu"), trainer=SimpleNamespace(world_size=1))
    metric = MeanMetric()
    assert not updated_on_any_rank(module, metric)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                # any warning fails the test
        assert torch.isnan(compute_quietly(metric))   # an empty mean: what a rank with no questions holds
    metric.update(torch.tensor([1.0, 3.0]))
    assert updated_on_any_rank(module, metric)
    assert compute_quietly(metric) == 2.0
