"""Caption metrics: CIDEr-D and BLEU against the COCO reference code, corpus-level state, DDP gathering of texts."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from pycocoevalcap.bleu.bleu import Bleu  # a dev requirement: missing, the run fails instead of skipping
from pycocoevalcap.cider.cider import Cider
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.text import BLEUScore

from metrics.captions import (
    CaptionBLEU,
    CIDErD,
    caption_metric_collection,
    decode_strings,
    encode_strings,
)

# Five images, 3-5 tokenised references each: overlaps, a short and an exact-match hypothesis, and for image 0
# a tie for the closest reference length (7 words: references of 8 and 6), listed longer-first.
HYPOTHESES = [
    "a dog runs on the green grass",
    "two people ride bikes on a street",
    "a car",
    "a man holding a surfboard on the beach",
    "a cat sleeps on a red couch",
]
REFERENCES = [
    ["a brown dog is running in a field", "a dog runs on the grass", "the dog plays on green grass",
     "a dog running outside"],
    ["two people ride bikes down a street", "two cyclists ride along the road",
     "people riding bicycles on a city street"],
    ["a red car parked by the road", "a small red car on the street", "a car is parked near a building", "a red car",
     "the red car is parked on the side of the road"],
    ["a man holds a surfboard on the beach", "a surfer walks on the sand with his board",
     "a man carrying a surfboard near the ocean"],
    ["a cat sleeps on a red couch", "a cat is lying on the sofa", "a grey cat asleep on a couch",
     "a cat on a red couch"],
]


def coco_inputs(hypotheses: list[str], references: list[list[str]]) -> tuple[dict, dict]:
    """(gts, res) as pycocoevalcap's scorers take them, already tokenised (no PTBTokenizer: it needs Java)."""
    return dict(enumerate(references)), {i: [h] for i, h in enumerate(hypotheses)}


def cider_of(hypotheses: list[str], references: list[list[str]]) -> CIDErD:
    metric = CIDErD()
    metric.update(hypotheses, references)
    return metric


# ---------------------------------------------------------------------------------------------------- CIDEr-D values


def test_cider_matches_pycocoevalcap():
    expected, expected_per_image = Cider().compute_score(*coco_inputs(HYPOTHESES, REFERENCES))
    metric = cider_of(HYPOTHESES, REFERENCES)
    assert metric.compute().item() == pytest.approx(expected, abs=1e-6)
    assert metric.compute_per_sample().tolist() == pytest.approx(list(expected_per_image), abs=1e-6)
    assert 2.0 < expected < 3.0  # 2.7427: the example is neither trivial nor hopeless


def test_split_updates_equal_one_update():
    whole = cider_of(HYPOTHESES, REFERENCES).compute()
    metric = CIDErD()
    batch_value = metric(HYPOTHESES[:2], REFERENCES[:2])  # forward: this batch alone, and accumulates
    metric.update(HYPOTHESES[2:], REFERENCES[2:])
    assert metric.compute().item() == pytest.approx(whole.item(), abs=1e-12)
    assert batch_value.item() == pytest.approx(cider_of(HYPOTHESES[:2], REFERENCES[:2]).compute().item())
    # document frequencies are corpus-level: averaging per-batch scores would give something else
    per_batch = (2 * batch_value + 3 * cider_of(HYPOTHESES[2:], REFERENCES[2:]).compute()) / 5
    assert abs(per_batch.item() - whole.item()) > 0.01  # 2.7831 vs 2.7427


def test_perfect_hypothesis_scores_high_and_empty_scores_zero():
    captions = ("a red ball on the grass", "two blue cubes on a table", "a green cone near a wall", "one yellow star")
    references = [[c] * 3 for c in captions]
    perfect = cider_of([refs[0] for refs in references], references).compute_per_sample()
    # cosine 1 at every order and no length penalty: 10, except that a 3-word caption has no 4-gram (7.5)
    assert perfect.tolist() == pytest.approx([10.0, 10.0, 10.0, 7.5])

    hypotheses = ["", *HYPOTHESES[1:]]
    scores = cider_of(hypotheses, REFERENCES).compute_per_sample()
    assert scores[0].item() == 0.0 and (scores[1:] > 0).all()
    assert cider_of([""], [["a red ball", "a ball"]]).compute().item() == 0.0  # one image, empty hypothesis
    with pytest.warns(UserWarning, match="before the ``update``"):
        assert CIDErD().compute().item() == 0.0  # nothing seen


@pytest.mark.parametrize("metric_class", [CIDErD, CaptionBLEU])
def test_bad_references_raise_naming_the_sample(metric_class: Callable[[], Metric]):
    references = [["a dog"], ["a cat"], [], ["a car"]]
    with pytest.raises(ValueError, match=r"references\[2\] is empty"):
        metric_class().update(["a dog", "a cat", "a bird", "a car"], references)
    with pytest.raises(ValueError, match=r"references\[0\] must be a list"):
        metric_class().update(["a dog"], ["a dog"])
    with pytest.raises(ValueError, match="2 hypotheses but 1 reference"):
        metric_class().update(["a dog", "a cat"], [["a dog"]])


# ---------------------------------------------------------------------------------- string state and DDP gathering


def test_string_encoding_round_trips():
    strings = ["a dog", "", "café au lait", "日本語のキャプション", "emoji 🐕‍🦺 ok", " spaced  out "]
    data, lengths = encode_strings(strings)
    assert data.dtype == torch.uint8 and lengths.dtype == torch.int64 and lengths.shape == (len(strings),)
    assert decode_strings(data, lengths) == strings
    # pieces from several updates or ranks, concatenated as a `cat` gather does
    more_data, more_lengths = encode_strings(["ünïcode", ""])
    joined = decode_strings(torch.cat([data, more_data]), torch.cat([lengths, more_lengths]))
    assert joined == [*strings, "ünïcode", ""]
    assert decode_strings(*encode_strings([])) == []
    with pytest.raises(ValueError, match="lengths add up"):
        decode_strings(data[:-1], lengths)


def test_set_dtype_leaves_text_states_intact():
    metric = cider_of(HYPOTHESES[:3], REFERENCES[:3])
    metric.set_dtype(torch.half)  # casts every torchmetrics state; bytes and lengths must stay integers
    metric.update(HYPOTHESES[3:], REFERENCES[3:])
    assert {t.dtype for t in metric.hypotheses_bytes} == {torch.uint8}
    assert {t.dtype for t in metric.reference_counts} == {torch.int64}
    assert metric.compute().item() == pytest.approx(cider_of(HYPOTHESES, REFERENCES).compute().item(), abs=1e-12)


def test_merge_state_equals_single_metric():
    rank0, rank1 = cider_of(HYPOTHESES[:3], REFERENCES[:3]), cider_of(HYPOTHESES[3:], REFERENCES[3:])
    rank1.merge_state(rank0)  # incoming state goes first: rank 0's samples, then rank 1's
    single = cider_of(HYPOTHESES, REFERENCES)
    assert rank1.compute().item() == pytest.approx(single.compute().item(), abs=1e-12)
    assert rank1.compute_per_sample().tolist() == pytest.approx(single.compute_per_sample().tolist(), abs=1e-12)


class _FakeAllGather:
    """An all_gather over recorded per-rank tensors: call i returns every rank's i-th tensor."""

    def __init__(self, outgoing: list[list[Tensor]]) -> None:
        self.outgoing = outgoing
        self.calls = 0

    def __call__(self, tensor: Tensor, group: object = None) -> list[Tensor]:
        gathered = [sent[self.calls % len(sent)] for sent in self.outgoing]  # one round per sync
        self.calls += 1
        assert len({t.dtype for t in gathered}) == 1, f"ranks send different dtypes: {[t.dtype for t in gathered]}"
        return gathered


def sync_as_ranks(ranks: list[Metric]) -> None:
    """Make each metric sync on `compute` as rank r of len(ranks) processes would, through torchmetrics' own code.

    Each rank's outgoing tensors are recorded by a sync with a recording gather (world size 1), then each metric
    gets a `dist_sync_fn` that answers with every rank's tensor and checks they share one dtype, as gloo and
    NCCL all_gather require.
    """
    outgoing: list[list[Tensor]] = []
    for metric in ranks:
        sent: list[Tensor] = []
        metric.sync(dist_sync_fn=lambda t, group=None, sent=sent: sent.append(t) or [t],
                    distributed_available=lambda: True)
        metric.unsync()
        outgoing.append(sent)
    for metric in ranks:
        metric.dist_sync_fn = _FakeAllGather(outgoing)
        metric.distributed_available_fn = lambda: True


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric CIDErD was called before")  # the idle rank
@pytest.mark.parametrize("split", [3, 5], ids=["both_ranks_have_data", "rank1_saw_nothing"])
def test_simulated_ddp_gather_equals_single_metric(split: int):
    single = cider_of(HYPOTHESES, REFERENCES)
    rank0 = cider_of(HYPOTHESES[:split], REFERENCES[:split])
    rank1 = CIDErD()
    if split < len(HYPOTHESES):
        rank1.update(HYPOTHESES[split:], REFERENCES[split:])
    sync_as_ranks([rank0, rank1])
    for rank in (rank0, rank1):
        assert rank.compute().item() == pytest.approx(single.compute().item(), abs=1e-12)
        assert rank.compute_per_sample().tolist() == pytest.approx(single.compute_per_sample().tolist(), abs=1e-12)
    # after compute the local state is back (unsync), so accumulation could go on
    assert len(rank0.texts("hypotheses")) == split


def _gloo_worker(rank: int, port: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        metrics = caption_metric_collection()
        if rank == 0:  # rank 1 sees nothing: the empty-rank corner case of the gather
            metrics.update(HYPOTHESES, REFERENCES)
        values = {name: value.item() for name, value in metrics.compute().items()}
        torch.save(values, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32" or not dist.is_available(), reason="needs torch.distributed with gloo")
def test_real_gloo_gather(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gloo_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    single = caption_metric_collection()
    single.update(HYPOTHESES, REFERENCES)
    expected = {name: value.item() for name, value in single.compute().items()}
    for rank in (0, 1):
        assert torch.load(tmp_path / f"rank{rank}.pt") == pytest.approx(expected, abs=1e-6)


# ------------------------------------------------------------------------------------------------------------ BLEU


def test_bleu4_of_references_is_one():
    metric = CaptionBLEU(n_gram=4)
    metric.update([refs[1] for refs in REFERENCES], REFERENCES)
    assert metric.compute().item() == pytest.approx(1.0)


def test_bleu_matches_pycocoevalcap_and_why_plain_bleuscore_does_not():
    expected, _ = Bleu(4).compute_score(*coco_inputs(HYPOTHESES, REFERENCES), verbose=0)
    for k in range(1, 5):
        metric = CaptionBLEU(n_gram=k)
        metric.update(HYPOTHESES, REFERENCES)
        assert metric.compute().item() == pytest.approx(expected[k - 1], abs=1e-6)  # float32 vs float64 only
    # coco-bleu-4 0.7197. Plain BLEUScore takes the FIRST closest reference length on ties, COCO the shorter:
    # image 0 (7 words) counts 8 instead of 6, total reference length 33 > 31 hypothesis words, so a brevity
    # penalty exp(1 - 33/31) = 0.937 that COCO does not apply (there 31 = 31).
    plain = BLEUScore(n_gram=4)
    plain.update(HYPOTHESES, REFERENCES)
    assert plain.compute().item() == pytest.approx(expected[3] * torch.exp(torch.tensor(1 - 33 / 31)).item(), abs=1e-6)
    # Same with the references sorted by length.
    plain = BLEUScore(n_gram=4)
    plain.update(HYPOTHESES, [sorted(refs, key=lambda r: len(r.split())) for refs in REFERENCES])
    assert plain.compute().item() == pytest.approx(expected[3], abs=1e-6)


def test_bleu_without_matching_ngrams_is_zero_where_coco_is_tiny():
    hypotheses = ["a dog on grass today", "the cat sat"]
    references = [["a dog runs on grass"], ["a cat sat on the mat"]]
    expected, _ = Bleu(4).compute_score(*coco_inputs(hypotheses, references), verbose=0)
    metric = CaptionBLEU(n_gram=4)
    metric.update(hypotheses, references)
    assert metric.compute().item() == 0.0 and 0.0 < expected[3] < 1e-3  # no matching 3- or 4-gram


def test_metric_collection():
    metrics = caption_metric_collection(prefix="val/")
    half = len(HYPOTHESES) // 2
    metrics.update(HYPOTHESES[:half], REFERENCES[:half])
    metrics.update(hypotheses=HYPOTHESES[half:], references=REFERENCES[half:])
    values = metrics.compute()
    assert sorted(values) == ["val/bleu1", "val/bleu2", "val/bleu3", "val/bleu4", "val/cider"]
    assert values["val/cider"].item() == pytest.approx(cider_of(HYPOTHESES, REFERENCES).compute().item())
    assert 0.0 < values["val/bleu4"] < values["val/bleu3"] < values["val/bleu2"] < values["val/bleu1"] <= 1.0
