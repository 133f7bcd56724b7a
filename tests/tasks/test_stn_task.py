"""The STN LightningModule on its own: overfits one batch, gradients reach every parameter, figures render."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from datamodules.digits import DigitsDataModule
from tasks.stn import STNClassifier


@pytest.fixture(scope="module")
def batch() -> dict[str, torch.Tensor]:
    datamodule = DigitsDataModule(distortion="rts", batch_size=32, num_workers=0)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))  # shuffled: all classes present
    assert len(batch["label"].unique()) >= 8
    return batch


@pytest.mark.parametrize(("arch", "localisation"), [("cnn", "regression"), ("st_cnn", "regression"),
                                                     ("st_cnn", "heatmap")])
def test_overfits_one_batch(batch, arch, localisation):
    torch.manual_seed(0)
    model = STNClassifier(arch=arch, image_size=42, num_classes=10, dropout=0.0, localisation=localisation)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first_loss = None
    for _ in range(60):
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
    model = STNClassifier(arch="st_cnn", image_size=42, num_classes=10)
    # the localisation net's last layer starts at zero (identity transform): one step moves it off zero
    torch.nn.init.normal_(model.transformer.localisation.regressor[-1].weight, std=1e-3)
    out = model(batch["image"])
    F.cross_entropy(out["logits"], batch["label"]).backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert torch.isfinite(parameter.grad).all(), name
    assert out["transformed"].shape == batch["image"].shape and out["theta"].shape == (32, 2, 3)


def test_st_out_size_sets_what_the_classifier_sees(batch):
    model = STNClassifier(arch="st_cnn", image_size=42, num_classes=10, st_out_size=28)
    assert model(batch["image"])["transformed"].shape == (32, 1, 28, 28)


def test_before_after_figure_renders(batch):
    model = STNClassifier(arch="st_cnn", image_size=42, num_classes=10, class_names=list("0123456789"))
    with torch.no_grad():
        out = model(batch["image"][:4])
    figure = model.before_after_figure({"image": batch["image"][:4], "label": batch["label"][:4],
                                        "transformed": out["transformed"], "theta": out["theta"],
                                        "pred": out["logits"].argmax(-1)})
    assert len(figure.axes) == 8
    # row 1 (axes 0-3): inputs, each with the red outline of the sampled region; row 2: transformed
    assert [len(axis.lines) for axis in figure.axes] == [1, 1, 1, 1, 0, 0, 0, 0]


def test_localisation_batch_norm_follows_the_classifier_unless_set():
    def loc_norms(model: STNClassifier) -> int:
        return sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.transformer.modules())

    assert loc_norms(STNClassifier(image_size=42, num_classes=10)) == 3
    assert loc_norms(STNClassifier(image_size=42, num_classes=10, batch_norm=False)) == 0
    assert loc_norms(STNClassifier(image_size=42, num_classes=10, loc_batch_norm=False)) == 0


def test_heatmap_localisation_is_built_and_unknown_ones_are_named():
    from modules.spatial_transformer import HeatmapLocalisationNet

    model = STNClassifier(image_size=60, num_classes=10, localisation="heatmap", loc_init_scale=0.5)
    assert isinstance(model.transformer.localisation, HeatmapLocalisationNet)
    with torch.no_grad():
        theta = model.eval()(torch.rand(2, 1, 60, 60))["theta"]
    torch.testing.assert_close(theta, torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]).expand(2, 2, 3))
    with pytest.raises(ValueError, match=r"model.localisation='grid'.*regression.*heatmap"):
        STNClassifier(image_size=60, num_classes=10, localisation="grid")
