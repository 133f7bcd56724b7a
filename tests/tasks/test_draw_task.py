"""DRAW on its own: the bound's terms against torch's, the importance-weighted bound, gradients to every parameter,
one batch overfitted in both modes, figures, and the options a user can get wrong."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from datamodules.digits import load_mnist5k
from figures.draw import canvas_steps_figure, read_windows_figure, sample_grid_figure
from modules.draw import (
    DRAWNetwork,
    importance_weighted_nats,
    kl_nats,
    log_importance_weight,
    reconstruction_nats,
)
from suite.configs import task_model

PROVIDED = {"image_size": 28, "num_classes": 10, "class_names": [str(i) for i in range(10)]}
SMALL = {"steps": 4, "encoder_size": 32, "decoder_size": 32, "latent_size": 8}


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """16 real digits, binarised [16, 28, 28], and their labels [16]."""
    images, labels = load_mnist5k()
    return (torch.from_numpy(images[:16]) > 127).float(), torch.from_numpy(labels[:16])


def network(read: str = "attention", write: str = "attention", **sizes: int) -> DRAWNetwork:
    return DRAWNetwork(height=28, width=28, read=read, write=write, read_size=2, write_size=5,
                       **{**SMALL, **sizes})


@pytest.mark.parametrize(("read", "write"), [("attention", "attention"), ("full", "full"), ("full", "attention")])
def test_a_pass_has_the_documented_shapes(digits, read, write):
    drawn = network(read, write)(digits[0])
    assert drawn.canvases.shape == (4, 16, 28, 28) and drawn.means.shape == drawn.latents.shape == (4, 16, 8)
    assert (drawn.read_boxes is None) == (read == "full") and (drawn.write_boxes is None) == (write == "full")
    if drawn.write_boxes is not None:
        assert drawn.write_boxes.shape == (4, 16, 4)


def test_the_bound_terms_equal_torch_distributions(digits):
    torch.manual_seed(0)
    drawn = network()(digits[0])
    expected_kl = kl_divergence(Normal(drawn.means, drawn.log_sigmas.exp()), Normal(0.0, 1.0)).sum(dim=(0, 2))
    torch.testing.assert_close(kl_nats(drawn), expected_kl)
    expected_nll = -Bernoulli(logits=drawn.canvases[-1]).log_prob(digits[0]).sum(dim=(1, 2))
    torch.testing.assert_close(reconstruction_nats(drawn, digits[0]), expected_nll)


def test_the_importance_weight_averages_to_the_elbo(digits):
    """E_q[-log w] = reconstruction + KL: the Monte-Carlo mean of -log w over many z matches the analytic bound on
    an image whose posterior does not depend on z (one step: nothing feeds back)."""
    torch.manual_seed(0)
    net = network(steps=1)
    with torch.no_grad():                                               # a posterior away from N(0, 1): mean 0.5,
        net.posterior.bias[:8], net.posterior.bias[8:] = 0.5, -1.5       # sigma e^-1.5 (every term of w matters)
    image = digits[0][:1].repeat(4000, 1, 1)
    with torch.no_grad():
        drawn = net(image)
        analytic = (reconstruction_nats(drawn, image) + kl_nats(drawn)).mean()
        sampled = -log_importance_weight(drawn, image).mean()
    assert abs(float(sampled - analytic)) < 0.003 * float(analytic)


def test_more_importance_samples_tighten_the_bound(digits):
    torch.manual_seed(0)
    net = network()
    with torch.no_grad():
        one = importance_weighted_nats(net, digits[0], 1, torch.Generator().manual_seed(1)).mean()
        many = importance_weighted_nats(net, digits[0], 64, torch.Generator().manual_seed(1)).mean()
        elbo = torch.stack([(reconstruction_nats(d, digits[0]) + kl_nats(d)).mean()
                            for d in (net(digits[0], torch.Generator().manual_seed(s)) for s in range(8))]).mean()
    assert many < elbo - 0.1 and abs(float(one - elbo)) < 0.05 * float(elbo)


def test_generation_follows_its_generator_and_has_write_boxes():
    net = network()
    first = net.generate(5, torch.Generator().manual_seed(3))
    again = net.generate(5, torch.Generator().manual_seed(3))
    other = net.generate(5, torch.Generator().manual_seed(4))
    assert torch.equal(first.canvases, again.canvases) and not torch.equal(first.canvases, other.canvases)
    assert first.canvases.shape == (4, 5, 28, 28) and first.write_boxes.shape == (4, 5, 4)


@pytest.mark.parametrize("overrides", [{}, {"read": "full", "write": "full"},
                                       {"mode": "classify", "read_size": 6}], ids=["attention", "full", "classify"])
def test_gradients_reach_every_parameter(digits, overrides):
    torch.manual_seed(0)
    model = task_model("draw", PROVIDED, **SMALL, **overrides)
    images, labels = digits
    loss = model.training_step({"image": images[:, None], "label": labels, "box": torch.zeros(16, 4)}, 0)
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reached {missing}"


@pytest.mark.parametrize("overrides", [{}, {"mode": "classify", "read_size": 8}], ids=["generate", "classify"])
def test_overfits_one_batch(digits, overrides):
    torch.manual_seed(0)
    model = task_model("draw", PROVIDED, **SMALL, **overrides)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = digits
    batch = {"image": images[:, None], "label": labels, "box": torch.zeros(16, 4)}
    losses = []
    for _ in range(150):
        optimiser.zero_grad()
        loss = model.training_step(batch, 0)
        loss.backward()
        optimiser.step()
        losses.append(float(loss))
    # generate: the bound falls far below the untrained ~540 nats; classify: the 16 labels are learned
    assert losses[-1] < (0.35 * losses[0] if "mode" not in overrides else 0.1), losses[::25]


def test_the_three_figures_render(digits):
    net = network()
    drawn = net(digits[0][:3])
    for figure in (canvas_steps_figure(drawn.canvases, drawn.write_boxes, digits[0][:3]),
                   read_windows_figure(digits[0][:3], drawn.read_boxes, ["a", "b", "c"],
                                       torch.rand(4, 3, 2, 2)),
                   sample_grid_figure(net.generate(10).canvases[-1])):
        assert len(figure.axes) >= 3
        figure.clf()


@pytest.mark.parametrize(("option", "match"), [
    ({"mode": "paint"}, r"model.mode='paint' is not known; choose one of \['generate', 'classify'\]"),
    ({"read": "glimpse"}, r"model.read='glimpse' is not known"),
    ({"write": "brush"}, r"model.write='brush' is not known"),
    ({"mode": "classify", "read": "full"}, "model.mode=classify reads through the Gaussian window"),
    ({"steps": 0}, "model.steps=0"),
    ({"importance_samples": -1}, "model.importance_samples=-1 must be >= 0"),
])
def test_bad_options_are_named(option, match):
    with pytest.raises(ValueError, match=match):
        task_model("draw", PROVIDED, **{**SMALL, **option})
