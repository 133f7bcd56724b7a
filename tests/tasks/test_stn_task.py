"""The STN LightningModule on its own: overfits one batch, gradients reach every parameter, figures render."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from figures.transformer import before_after_figure
from suite.configs import task_datamodule, task_model
from tasks.stn import STNClassifier


def stn_model(image_size: int = 42, **args) -> STNClassifier:
    """configs/task/stn.yaml's model (ST-CNN, heatmap localiser) for digits on an ``image_size`` canvas."""
    return task_model("stn", {"image_size": image_size, "num_classes": 10, "class_names": list("0123456789")}, **args)


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    datamodule = task_datamodule("stn", distortion="rts", batch_size=32, num_workers=0)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))  # shuffled: all classes present
    assert len(batch["label"].unique()) >= 8
    return batch


@pytest.mark.parametrize(("arch", "localisation"), [("cnn", "regression"), ("st_cnn", "regression"),
                                                     ("st_cnn", "heatmap")])
def test_overfits_one_batch(batch, arch, localisation):
    torch.manual_seed(0)
    model = stn_model(arch=arch, dropout=0.0, localisation=localisation)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first_loss = None
    for _ in range(150):  # eval-mode BatchNorm statistics need more steps than the training loss
        logits = model(batch["image"])["logits"]
        loss = F.cross_entropy(logits, batch["label"])
        first_loss = first_loss if first_loss is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predictions = model(batch["image"])["logits"].argmax(-1)
    assert first_loss > 1.5 and loss.item() < 0.05
    assert (predictions == batch["label"]).all()


def test_gradients_reach_every_parameter(batch):
    torch.manual_seed(0)
    model = stn_model(localisation="regression")
    # the localisation net's last layer starts at zero (identity transform): one step moves it off zero
    torch.nn.init.normal_(model.transformer.localisation.regressor[-1].weight, std=1e-3)
    out = model(batch["image"])
    F.cross_entropy(out["logits"], batch["label"]).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert torch.isfinite(parameter.grad).all(), name
    assert out["transformed"].shape == (32, 1, 28, 28) and out["theta"].shape == (32, 2, 3)


def test_st_out_size_sets_what_the_classifier_sees(batch):
    assert stn_model(st_out_size=20)(batch["image"])["transformed"].shape == (32, 1, 20, 20)
    assert stn_model(st_out_size=None)(batch["image"])["transformed"].shape == (32, 1, 42, 42)


def test_before_after_figure_renders(batch):
    model = stn_model()
    with torch.no_grad():
        out = model(batch["image"][:4])
    figure = before_after_figure({"image": batch["image"][:4], "label": batch["label"][:4],
                                  "transformed": out["transformed"], "theta": out["theta"],
                                  "pred": out["logits"].argmax(-1)}, model.class_names)
    assert len(figure.axes) == 8
    # row 1 (axes 0-3): inputs, each with the red outline of the sampled region; row 2: transformed
    assert [len(axis.lines) for axis in figure.axes] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_localisation_batch_norm_follows_the_classifier_unless_set():
    def loc_norms(model: STNClassifier) -> int:
        return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.transformer.modules())

    for localisation in ("regression", "heatmap"):
        follows = stn_model(localisation=localisation, loc_batch_norm=None)
        assert loc_norms(follows) > 0
        assert loc_norms(stn_model(localisation=localisation, loc_batch_norm=None, batch_norm=False)) == 0
        assert loc_norms(stn_model(localisation=localisation, loc_batch_norm=False)) == 0


def test_heatmap_localisation_is_built_and_unknown_ones_are_named():
    from modules.spatial_transformer import HeatmapLocalisationNet

    model = stn_model(image_size=60, loc_init_scale=0.5)
    assert isinstance(model.transformer.localisation, HeatmapLocalisationNet)
    with torch.no_grad():
        theta = model.eval()(torch.rand(2, 1, 60, 60))["theta"]
    torch.testing.assert_close(theta, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]).expand(2, 2, 3))
    with pytest.raises(ValueError, match=r"model.localisation='grid'.*regression.*heatmap"):
        stn_model(localisation="grid")
