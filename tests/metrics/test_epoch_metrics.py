"""Epoch-end metric helpers: the update decision, and computing an un-updated metric without a warning.
(The multi-rank case is tested end to end in tests/test_train_vqa.py, test_ddp_test_metrics_equal_one_process_metrics.)
"""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torchmetrics import MeanMetric

from metrics.distributed import compute_quietly, updated_on_any_rank
from metrics.grouped_mean import GroupedMean


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


def test_grouped_mean_per_group_over_several_updates():
    metric = GroupedMean(3)
    metric.update(torch.tensor([1.0, 0.0, 1.0]), torch.tensor([0, 0, 2]))
    metric.update(torch.tensor([1.0, 1.0]), torch.tensor([2, 0]))
    means, counts = metric.compute()
    assert counts.tolist() == [3.0, 0.0, 2.0]
    assert means[0].item() == pytest.approx(2 / 3) and means[2].item() == 1.0
    assert torch.isnan(means[1])                        # a group with no value: NaN, and count 0 says so
    metric.reset()
    assert metric.compute()[1].sum() == 0


def test_grouped_mean_rejects_mismatched_shapes_and_no_groups():
    with pytest.raises(ValueError, match=r"values \[B\] and groups \[B\]"):
        GroupedMean(2).update(torch.ones(3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one group"):
        GroupedMean(0)
