"""Stacked attention VQA as a module: distinct hops, normalised maps, gradients, overfitting one batch."""

from __future__ import annotations

import pytest
import torch

from datamodules.vqa import VQADataModule
from modules.stacked_attention import StackedAttention
from suite.configs import task_datamodule, task_model
from tasks.vqa import StackedAttentionVQA


@pytest.fixture(scope="module")
def data() -> VQADataModule:
    # no curriculum: batches mix non-relational and relational questions from the start
    datamodule = task_datamodule("vqa", num_images={"train": 20, "val": 4, "test": 4}, batch_size=16,
                                 num_workers=0, seed=2, curriculum_questions=0)
    datamodule.setup("fit")
    return datamodule


def small_model(data: VQADataModule, **kwargs) -> StackedAttentionVQA:
    """configs/task/vqa.yaml's model (coordinates, two-way question LSTM) at test size."""
    torch.manual_seed(0)
    args = {"encoder": {"channels": [16, 32, 32]}, "dim": 64, "attention_dim": 32, "embed_dim": 32, "dropout": 0.0,
            **kwargs}
    return task_model("vqa", {"question_vocabulary": data.question_vocabulary, "answers": data.answers,
                              "image_size": data.image_size}, **args)


def test_concat_readout_keeps_the_question_and_each_hop_context_apart():
    torch.manual_seed(0)
    stacked = StackedAttention(dim=8, hops=2, attention_dim=4, readout="concat")
    image, question = torch.randn(3, 5, 8), torch.randn(3, 8)
    out, maps = stacked(image, question)
    assert out.shape == (3, 24) == (3, stacked.out_dim(8)) and torch.equal(out[:, :8], question)
    first_context = torch.einsum("bn,bnd->bd", maps[0], image)
    torch.testing.assert_close(out[:, 8:16], first_context)
    summed = StackedAttention(dim=8, hops=2, attention_dim=4)
    summed.load_state_dict(stacked.state_dict())
    torch.testing.assert_close(summed(image, question)[0], out[:, :8] + out[:, 8:16] + out[:, 16:])   # u_2
    with pytest.raises(ValueError, match=r"model.readout='mean'.*'sum', 'concat'"):
        StackedAttention(dim=8, hops=2, attention_dim=4, readout="mean")


def test_each_hop_has_its_own_parameters():
    stacked = StackedAttention(dim=8, hops=3, attention_dim=4)
    ids = {id(p) for hop in stacked.hops for p in hop.parameters()}
    assert len(ids) == 3 * len(list(stacked.hops[0].parameters()))
    stacked.hops[0].v.weight.data.fill_(1.0)
    assert not torch.equal(stacked.hops[0].v.weight, stacked.hops[1].v.weight)


@pytest.mark.parametrize(("hops", "options"), [(0, {}), (1, {}), (2, {}),
                                                (2, {"score": "multiplicative", "question_norm": True}),
                                                (2, {"classifier_hidden": 32}), (2, {"readout": "concat"}),
                                                (0, {"readout": "concat"}), (2, {"question_bidirectional": False}),
                                                (2, {"coordinates": False}),
                                                (2, {"channels_last": True})])
def test_maps_sum_to_one_per_hop_and_every_parameter_gets_a_gradient(data, hops, options):
    model = small_model(data, hops=hops, **options)
    batch = next(iter(data.train_dataloader()))
    logits, maps = model(batch["image"], batch["question"], batch["question_lengths"])
    assert logits.shape == (16, len(data.answers)) and len(maps) == hops
    for weights in maps:
        assert weights.shape == (16, model.grid[0] * model.grid[1])
        torch.testing.assert_close(weights.sum(-1), torch.ones(16))
    model._loss(logits, batch).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    linear_layers = [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    assert len(linear_layers) == (2 if options.get("classifier_hidden") else 1)
    conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == bool(options.get("channels_last"))


def test_bidirectional_question_encoder_keeps_the_query_size_and_ignores_padding(data):
    model = small_model(data, question_bidirectional=True)
    encoder = model.question_encoder
    assert encoder.num_directions == 2 and encoder.out_dim == 64 == model.hparams.dim
    pad = data.question_vocabulary.PAD_ID
    with torch.no_grad():
        alone = encoder(torch.tensor([[5, 6, 7, 8]]), torch.tensor([4])).final                 # [1, d]
        padded = encoder(torch.tensor([[5, 6, 7, 8, pad, pad], [5, 9, 9, 9, 9, 9]]), torch.tensor([4, 6])).final
    # the backward half starts at the last real word, not at the padding (packed sequences)
    torch.testing.assert_close(padded[0], alone[0])
    assert not torch.allclose(padded[1, 32:], alone[0, 32:])
    with pytest.raises(ValueError, match="even model.dim"):
        small_model(data, question_bidirectional=True, dim=63)


@pytest.mark.parametrize("hops", [0, 2])
def test_overfits_one_batch(data, hops):
    model = small_model(data, hops=hops)
    batch = next(iter(data.train_dataloader()))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        logits, _ = model(batch["image"], batch["question"], batch["question_lengths"])
        loss = model._loss(logits, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    logits, _ = model(batch["image"], batch["question"], batch["question_lengths"])
    assert (logits.argmax(-1) == batch["answer"]).all() and loss < 0.05


def test_attention_correctness_on_a_map_that_looks_at_the_object(data):
    model = small_model(data, hops=1)
    batch = next(iter(data.val_dataloader()))
    from metrics.attention_correctness import box_cell_cover

    cover = (box_cell_cover(batch["about_boxes"], model.grid) * batch["about_mask"][..., None]).sum(1).clamp(max=1)
    on_object = cover / cover.sum(-1, keepdim=True)                                              # [B, N]
    model._update_correctness(batch, [on_object], "val")
    mass = model.correctness["val"][0].compute()
    uniform = model.correctness_uniform["val"].compute()
    assert mass > 0.5 and mass > 3 * uniform


def test_attention_supervision_pulls_the_first_hop_onto_the_named_object(data):
    """The supervised-attention term: positive, and training on it alone moves the first hop's mass on the object
    a non-relational question names from about a uniform map's share to most of it; relational questions and
    later hops are not supervised (the term does not change when only their maps change)."""
    model = small_model(data, hops=2, attention_supervision=1.0)
    batch = next(iter(data.train_dataloader()))
    named = batch["kind"] == 0                                                                   # [B]
    assert named.any() and not named.all()
    cover = model._about_cover(batch)                                                            # [B, N]
    uniform = cover[named].mean(-1).mean()

    def masses() -> list[float]:
        _, maps = model(batch["image"], batch["question"], batch["question_lengths"])
        return [float((weights[named] * cover[named]).sum(-1).mean()) for weights in maps]

    _, maps = model(batch["image"], batch["question"], batch["question_lengths"])
    moved = [weights.clone() for weights in maps]
    moved[0][~named] = moved[0][~named].roll(1, dims=-1)     # other first-hop maps for relational questions only
    moved[1] = moved[1].roll(1, dims=-1)                     # another second hop for every question
    torch.testing.assert_close(model._attention_supervision(batch, moved), model._attention_supervision(batch, maps))

    assert masses()[0] < 3 * uniform
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        _, maps = model(batch["image"], batch["question"], batch["question_lengths"])
        supervision = model._attention_supervision(batch, maps)
        assert supervision > 0
        optimizer.zero_grad()
        supervision.backward()
        optimizer.step()
    assert masses()[0] > 0.5


def test_attention_supervision_needs_boxes_and_a_non_negative_weight(data):
    model = small_model(data, hops=1, attention_supervision=1.0)
    batch = {key: value for key, value in next(iter(data.train_dataloader())).items() if key != "about_boxes"}
    _, maps = model(batch["image"], batch["question"], batch["question_lengths"])
    with pytest.raises(ValueError, match="attention_supervision.*Sort-of-CLEVR"):
        model._attention_supervision(batch, maps)
    with pytest.raises(ValueError, match="attention_supervision must be >= 0"):
        small_model(data, attention_supervision=-1.0)
