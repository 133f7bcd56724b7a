"""ImageCaptioner as a module: gradients, REINFORCE, overfitting one batch, attention correctness on known outputs."""

from __future__ import annotations

import pytest
import torch

import tasks.sequence as sequence
from datamodules.captions import CaptionDataModule
from metrics.attention_correctness import box_cell_cover
from modules.beam_search import Decoded, Hypothesis
from suite.configs import task_datamodule, task_model
from tasks.captioning import ImageCaptioner


@pytest.fixture(scope="module")
def data() -> CaptionDataModule:
    datamodule = task_datamodule("captioning", num_images={"train": 40, "val": 6, "test": 4}, batch_size=8,
                                 num_workers=0, seed=3)
    datamodule.setup("fit")
    return datamodule


def first_batch(loader) -> dict:
    return next(iter(loader))


def small_model(data: CaptionDataModule, **kwargs) -> ImageCaptioner:
    """configs/task/captioning.yaml's model at test size."""
    torch.manual_seed(0)
    args = {"encoder": {"channels": [16, 32, 32]}, "embed_dim": 32, "hidden_dim": 64, "attention_dim": 32,
            "dropout": 0.0, **kwargs}
    return task_model("captioning", {"vocabulary": data.vocabulary, "image_size": data.image_size}, **args)


def losses_of(model: ImageCaptioner, batch: dict) -> dict:
    return model.training_losses(model(batch["image"], batch["tokens"]), batch["tokens"])


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_every_parameter_gets_a_gradient(data, attention):
    model = small_model(data, attention=attention, mix_soft_prob=0.5)
    batch = first_batch(data.train_dataloader())
    losses = losses_of(model, batch)
    losses["loss"].backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert torch.isfinite(losses["loss"])


def test_reinforce_alone_trains_the_hard_attention(data):
    model = small_model(data, attention="hard", mix_soft_prob=0.0)
    batch = first_batch(data.train_dataloader())
    losses = losses_of(model, batch)
    # the first batch sets the baseline to its mean reward: advantages are centred, not zero
    assert losses["reinforce"].requires_grad
    losses["reinforce"].backward()
    attention = model.decoder.attention.inner
    grads = [p.grad for p in attention.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    assert model.decoder.lstm.weight_hh.grad is not None  # the sampled path reaches the recurrent state too


def test_baseline_moves_towards_the_reward(data):
    model = small_model(data, attention="hard", baseline_decay=0.5)
    batch = first_batch(data.train_dataloader())
    first = losses_of(model, batch)
    assert float(model.reward_baseline) == pytest.approx(float(first["reward"]))
    model.reward_baseline.fill_(0.0)
    second = losses_of(model, batch)
    assert float(model.reward_baseline) == pytest.approx(0.5 * float(second["reward"]), rel=1e-5)


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_overfits_one_batch_and_then_decodes_its_captions(data, attention):
    model = small_model(data, attention=attention, alpha_c=0.0, mix_soft_prob=0.0)  # hard: always sample
    batch = first_batch(data.val_dataloader())  # 6 distinct images, one caption each (their first reference)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150 if attention == "soft" else 400):  # sampled locations make hard attention noisier
        losses = losses_of(model, batch)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert losses["nll"] < 0.1
    model.eval()
    decoded = [data.vocabulary.decode(h.tokens) for h in model.generate(batch["image"], beam_size=2)]
    wanted = data.vocabulary.decode_batch(batch["tokens"])
    # hard attention trained on samples decodes with the expectation: allow one of the six to differ
    assert sum(a == b for a, b in zip(decoded, wanted, strict=True)) >= (6 if attention == "soft" else 5)


def test_attention_correctness_is_measured_on_the_words_that_name_objects(data, monkeypatch):
    model = small_model(data)
    model.eval()
    batch = first_batch(data.val_dataloader())
    vocab = data.vocabulary
    grid = model.grid
    positions = grid[0] * grid[1]
    # every caption: "<colour> <shape> of" the first object, all attention inside the first object's box
    hypotheses, expected_mass = [], []
    for b in range(len(batch["image"])):
        ids = batch["object_words"][b, 0].tolist() + [vocab.encode("of")[0]]
        box = batch["boxes"][b, 0]
        cover = box_cell_cover(box[None], grid)[0]                                          # [N]
        inside = cover / cover.sum()
        hypotheses.append(Hypothesis(ids, 0.0, torch.stack([inside, inside, torch.full((positions,), 1 / positions)]),
                                     0.0, True))
        expected_mass.append((inside * cover.clamp(max=1)).sum())
    monkeypatch.setattr(sequence, "beam_search", lambda *args, **kwargs: Decoded.from_hypotheses(hypotheses))
    model.evaluate(batch, "val", keep_figure=False)
    mass = model.correctness["val"].compute()
    uniform = model.correctness_uniform["val"].compute()
    torch.testing.assert_close(mass, torch.stack(expected_mass).mean(), atol=1e-5, rtol=1e-5)
    assert mass > 0.5 > uniform > 0
    assert model.entropy["val"].update_count == 1


def test_an_encoder_named_instead_of_configured_says_how_to_pick_one(data):
    """model.encoder=resnet (a dot) sets a string where a config node belongs: the error names the config group."""
    with pytest.raises(ValueError, match=r"model.encoder='resnet'.*model/encoder=conv or model/encoder=resnet"):
        small_model(data, encoder="resnet")


def test_reinforce_term_by_hand(data):
    """Xu eq. 12 with a moving-average baseline, for fixed per-word NLL, sample log-probabilities and baseline."""
    model = small_model(data, attention="hard", baseline_decay=0.5)
    model.reward_baseline.fill_(-1.0)
    model.baseline_ready.fill_(True)
    nll = torch.tensor([[0.5, 1.0, 7.0], [2.0, 1.0, 3.0]])                     # [B, T]; the 7.0 is padding
    real = torch.tensor([[True, True, False], [True, True, True]])
    log_probs = torch.tensor([[-1.0, -0.5, -9.0], [-2.0, -1.0, -0.5]], requires_grad=True)
    entropy = torch.tensor([[0.3, 0.2, 9.0], [0.1, 0.4, 0.5]])
    terms = model.reinforce(nll, real, log_probs, entropy)
    reward = torch.tensor([-(0.5 + 1.0) / 2, -(2.0 + 1.0 + 3.0) / 3])           # mean log p(word | s) per caption
    advantage = reward - (-1.0)                                                  # [0.25, -1.0]
    sampled = torch.tensor([-1.0 - 0.5, -2.0 - 1.0 - 0.5])                       # log p(s) of the real words
    torch.testing.assert_close(terms["reinforce"], -(advantage * sampled).mean())
    torch.testing.assert_close(terms["attention_entropy"], torch.tensor((0.3 + 0.2 + 0.1 + 0.4 + 0.5) / 5))
    torch.testing.assert_close(terms["reward"], reward.mean())
    torch.testing.assert_close(model.reward_baseline, torch.tensor(0.5 * -1.0 + 0.5 * reward.mean()))
    # a descent step raises log p(s) where the reward beat the baseline and lowers it where it did not;
    # padded steps get no gradient
    terms["reinforce"].backward()
    stepped = log_probs.detach() - 0.1 * log_probs.grad
    assert (stepped[0, :2] > log_probs[0, :2]).all() and (stepped[1] < log_probs[1]).all()
    assert log_probs.grad[0, 2] == 0


def test_no_gradient_flows_through_the_reward(data):
    """The REINFORCE term depends on the words only through the reward, which must be a constant: its gradient with
    respect to the word logits is zero (the word loss trains them)."""
    model = small_model(data, attention="hard", mix_soft_prob=0.0)
    batch = first_batch(data.train_dataloader())
    out = model(batch["image"], batch["tokens"])
    losses = model.training_losses(out, batch["tokens"])
    (through_reward,) = torch.autograd.grad(losses["reinforce"], out.logits, allow_unused=True)
    assert through_reward is None or not through_reward.abs().any()
    (through_words,) = torch.autograd.grad(losses["nll"], out.logits)
    assert through_words.abs().sum() > 0
