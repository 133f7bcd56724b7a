"""TranslationModel as a module: masking, overfitting one batch per attention kind, decoding, checkpoints."""

from __future__ import annotations

import pytest
import torch

from datamodules.translation import TranslationDataModule
from suite.configs import task_datamodule, task_model
from tasks.nmt import ATTENTION_KINDS, TranslationModel


@pytest.fixture(scope="module")
def data() -> TranslationDataModule:
    datamodule = task_datamodule("nmt", sizes={"train": 200, "val": 8, "test": 8}, vocab_size=120, batch_size=8,
                                       num_workers=0, seed=5)
    datamodule.setup("fit")
    return datamodule


def small_model(data: TranslationDataModule, **kwargs) -> TranslationModel:
    """configs/task/nmt.yaml's model at test size."""
    torch.manual_seed(0)
    args = {"embed_dim": 32, "hidden_dim": 32, "attention_dim": 32, "dropout": 0.0, "label_smoothing": 0.0,
            **kwargs}
    return task_model("nmt", {"source_vocabulary": data.source_vocabulary,
                              "target_vocabulary": data.target_vocabulary}, **args)


def loss_of(model: TranslationModel, out, target: torch.Tensor) -> torch.Tensor:
    return model.training_losses(out, target)["loss"]


def val_batch(data: TranslationDataModule) -> dict:
    return next(iter(data.val_dataloader()))


@pytest.mark.parametrize("attention", list(ATTENTION_KINDS))
def test_padded_source_positions_get_zero_attention_and_every_parameter_a_gradient(data, attention):
    model = small_model(data, attention=attention)
    batch = val_batch(data)
    lengths = batch["source_lengths"]
    assert lengths.min() < batch["source"].size(1), "the fixture batch should mix source lengths"
    out = model(batch["source"], lengths, batch["target"])
    padded = torch.arange(batch["source"].size(1))[None, :] >= lengths[:, None]                # [B, S]
    assert (out.attention.masked_select(padded[:, None, :].expand_as(out.attention)) == 0).all()
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(out.attention.shape[:2]))
    loss_of(model, out, batch["target"]).backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]


@pytest.mark.parametrize("attention", list(ATTENTION_KINDS))
def test_each_attention_kind_overfits_one_batch(data, attention):
    model = small_model(data, attention=attention)
    batch = val_batch(data)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        loss = loss_of(model, model(batch["source"], batch["source_lengths"], batch["target"]), batch["target"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss < 0.1
    model.eval()
    assert model.translate(batch["sources_text"]) == batch["references"]


def test_beam_width_one_equals_greedy(data):
    model = small_model(data).eval()
    batch = val_batch(data)
    greedy = model.generate(batch["source"], batch["source_lengths"], decode="greedy")
    beam = model.generate(batch["source"], batch["source_lengths"], decode="beam", beam_size=1)
    assert [h.tokens for h in greedy] == [h.tokens for h in beam]


def test_unknown_characters_become_unk_not_a_crash(data):
    model = small_model(data).eval()
    out = model.translate(["vingt 漢字 ☃ unknownword", ""])
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def test_unknown_attention_and_decode_list_the_choices(data):
    with pytest.raises(ValueError, match=r"model.attention='luong_concat'.*bahdanau"):
        small_model(data, attention="luong_concat")
    with pytest.raises(ValueError, match=r"model.decode='sample'.*\['beam', 'greedy'\]"):
        small_model(data, decode="sample")


def test_bleu_of_the_references_against_themselves_is_100(data):
    model = small_model(data)
    batch = val_batch(data)
    model.bleu["val"].update(batch["references"], [[r] for r in batch["references"]])
    assert float(model.bleu["val"].compute()) * 100 == pytest.approx(100.0)
    model.bleu["val"].reset()
    model.bleu["val"].update(["un deux trois quatre"], [["cinq six sept huit"]])
    assert float(model.bleu["val"].compute()) == 0.0


def test_corpus_bleu_equals_sacrebleu_on_detokenised_sentences(data):
    """What val/bleu logs is sacreBLEU's corpus BLEU (13a) of the detokenised outputs, over several batches."""
    import sacrebleu

    hypotheses = ["Le chat est assis sur le tapis.", "Il pleut beaucoup aujourd'hui, n'est-ce pas ?",
                  "Deux hommes regardent un match de football.", "Une femme lit un livre dans le parc."]
    references = ["Le chat est assis sur le tapis.", "Il pleut fort aujourd'hui, non ?",
                  "Deux hommes regardent le match de foot.", "Une femme lit dans le jardin."]
    model = small_model(data)
    for start in (0, 2):   # two batches, as validation steps would
        model.update_decoded_metrics({"references": references[start:start + 2]}, "val", None,
                                     hypotheses[start:start + 2])
    logged = float(model.decoded_metric_values("val")["val/bleu"])
    expected = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="13a").score
    assert 0 < expected < 100
    assert logged == pytest.approx(expected, abs=1e-3)
