"""Corpus-level caption metrics as torchmetrics ``Metric`` objects that sync across DDP ranks.

- :class:`CIDErD`: CIDEr-D exactly as the COCO caption evaluation code computes it (``pycocoevalcap``), with
  document frequencies taken over the references of the whole evaluated corpus. Because that statistic is
  corpus-level, the metric keeps the texts themselves as state; they are gathered across ranks as tensors of
  UTF-8 bytes (:func:`encode_strings` / :func:`decode_strings`, :class:`TextStateMetric`).
- :class:`CaptionBLEU`: torchmetrics' ``BLEUScore`` with the COCO script's choice of the closest reference
  length on ties, so that it gives the COCO BLEU-1..4 (see its docstring for the one remaining difference).
- :func:`caption_metric_collection`: ``bleu1``..``bleu4`` and ``cider`` in one ``MetricCollection``.

Input format of every metric here: ``update(hypotheses, references)`` with ``hypotheses: list[str]`` (one
generated caption per image) and ``references: list[list[str]]`` (the reference captions of each image, at
least one). Strings are already tokenised: lowercased words separated by spaces (``"a dog on the grass"``);
nothing here lowercases, strips punctuation or runs the PTB tokenizer.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn import Module
from torchmetrics import Metric, MetricCollection
from torchmetrics.text import BLEUScore
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

__all__ = [
    "CIDErD",
    "CaptionBLEU",
    "TextStateMetric",
    "caption_metric_collection",
    "check_caption_inputs",
    "cider_d_scores",
    "decode_strings",
    "encode_strings",
]


# ----------------------------------------------------------------------------------------------------------------------
# strings <-> tensors, so that texts can be all-gathered like any other metric state
# ----------------------------------------------------------------------------------------------------------------------


def encode_strings(strings: Sequence[str], device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Encode strings as ``(data uint8 [total_bytes], lengths int64 [len(strings)])``: UTF-8 bytes, concatenated.

    Empty strings are fine (length 0); any unicode round-trips through :func:`decode_strings`.
    """
    encoded = [s.encode("utf-8") for s in strings]
    data = torch.from_numpy(np.frombuffer(b"".join(encoded), dtype=np.uint8).copy())
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.int64)
    return data.to(device), lengths.to(device)


def decode_strings(data: Tensor, lengths: Tensor) -> list[str]:
    """Inverse of :func:`encode_strings` (also after the pieces of several calls or ranks were concatenated)."""
    if int(lengths.sum()) != data.numel():
        raise ValueError(f"decode_strings: lengths add up to {int(lengths.sum())} bytes but data has {data.numel()}")
    raw = data.detach().to("cpu", torch.uint8).numpy().tobytes()
    ends = np.cumsum(lengths.detach().cpu().numpy()).tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [raw[a:b].decode("utf-8") for a, b in zip(starts, ends, strict=True)]


def _cat_list_state(state: list[Tensor] | Tensor, dtype: torch.dtype) -> Tensor:
    """A ``cat`` list state as one tensor: a list before sync, already one tensor after a DDP sync."""
    if isinstance(state, Tensor):
        return state
    return dim_zero_cat(state) if len(state) else torch.empty(0, dtype=dtype)


class TextStateMetric(Metric):
    """Base for metrics whose state holds lists of strings (and other 1-D tensor lists) gathered across ranks.

    ``add_text_state("hyp")`` registers two ``cat`` list states, ``hyp_bytes`` (uint8) and ``hyp_lengths``
    (int64); ``append_texts("hyp", strings)`` adds strings in ``update``; ``texts("hyp")`` returns every string
    in ``compute``, from all ranks after a DDP sync (rank 0's first, each rank in its update order).

    Two guards over torchmetrics' defaults: a rank that saw no data would stand in an empty float tensor of the
    metric's dtype for each list state, which gloo/NCCL cannot all-gather with the other ranks' uint8/int64
    tensors (gloo aborts the process), so such a rank sends an empty tensor of the state's own dtype; and
    ``set_dtype`` (which casts every state) moves these states between devices but leaves their dtype alone.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._list_state_dtypes: dict[str, torch.dtype] = {}

    def add_tensor_list_state(self, name: str, dtype: torch.dtype) -> None:
        """A list of 1-D tensors of ``dtype``, concatenated across updates and ranks."""
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self._list_state_dtypes[name] = dtype

    def add_text_state(self, name: str) -> None:
        """A list of strings, kept as ``{name}_bytes`` (uint8) and ``{name}_lengths`` (int64) list states."""
        self.add_tensor_list_state(f"{name}_bytes", torch.uint8)
        self.add_tensor_list_state(f"{name}_lengths", torch.int64)

    def append_tensor(self, name: str, values: Tensor) -> None:
        """Append a 1-D tensor to the list state ``name`` (moved to the metric's device, cast to its dtype)."""
        getattr(self, name).append(values.to(device=self.device, dtype=self._list_state_dtypes[name]))

    def append_texts(self, name: str, strings: Sequence[str]) -> None:
        """Append strings to the text state ``name``."""
        data, lengths = encode_strings(strings, device=self.device)
        getattr(self, f"{name}_bytes").append(data)
        getattr(self, f"{name}_lengths").append(lengths)

    def tensor_state(self, name: str) -> Tensor:
        """The list state ``name`` as one tensor (empty if nothing was added)."""
        return _cat_list_state(getattr(self, name), self._list_state_dtypes[name])

    def texts(self, name: str) -> list[str]:
        """Every string added to the text state ``name``, in order."""
        return decode_strings(self.tensor_state(f"{name}_bytes"), self.tensor_state(f"{name}_lengths"))

    # The two overrides below hook torchmetrics' private `_apply` / `_sync_dist` (checked against 1.9.0);
    # tests/metrics/test_caption_metrics.py exercises both.
    def _apply(self, fn: Callable, exclude_state: Sequence[str] = ()) -> Module:
        own = tuple(getattr(self, "_list_state_dtypes", {}))
        this = super()._apply(fn, exclude_state=(*exclude_state, *own))
        for name in own:
            if name not in exclude_state:
                value = getattr(this, name)
                moved = value.to(this.device) if isinstance(value, Tensor) else [t.to(this.device) for t in value]
                setattr(this, name, moved)
        return this

    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any | None = None) -> None:
        # Runs after torchmetrics has cached the local state, which `unsync` restores afterwards.
        for name, dtype in self._list_state_dtypes.items():
            if isinstance(getattr(self, name), list) and not getattr(self, name):
                setattr(self, name, [torch.empty(0, dtype=dtype, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group)


# ----------------------------------------------------------------------------------------------------------------------
# input checks shared by the caption metrics
# ----------------------------------------------------------------------------------------------------------------------


def check_caption_inputs(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise ``ValueError`` naming the offending sample unless the inputs follow the format of this module."""
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise ValueError("hypotheses must be a list of strings and references a list of lists of strings, not a str")
    if len(hypotheses) != len(references):
        raise ValueError(f"got {len(hypotheses)} hypotheses but {len(references)} reference lists")
    for index, (hypothesis, refs) in enumerate(zip(hypotheses, references, strict=True)):
        if not isinstance(hypothesis, str):
            raise ValueError(f"hypotheses[{index}] must be a str (tokenised caption), got {type(hypothesis).__name__}")
        if isinstance(refs, str):
            raise ValueError(f"references[{index}] must be a list of reference captions, got a single str")
        if len(refs) == 0:
            raise ValueError(f"references[{index}] is empty: every sample needs at least one reference caption")
        for j, ref in enumerate(refs):
            if not isinstance(ref, str):
                raise ValueError(f"references[{index}][{j}] must be a str, got {type(ref).__name__}")


# ----------------------------------------------------------------------------------------------------------------------
# CIDEr-D
# ----------------------------------------------------------------------------------------------------------------------


def _ngram_counts(sentence: str, n: int) -> Counter[tuple[str, ...]]:
    """Counts of every 1..n-gram of a space-tokenised sentence."""
    words = sentence.split()
    return Counter(tuple(words[i : i + k]) for k in range(1, n + 1) for i in range(len(words) - k + 1))


def cider_d_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0
) -> list[float]:
    """CIDEr-D of each hypothesis against its references, the corpus being all the samples given.

    Follows ``pycocoevalcap/cider/cider_scorer.py`` step by step:

    - document frequency ``df(g)``: the number of samples with n-gram ``g`` in at least one of their references;
    - tf-idf vectors per n-gram order, weight ``tf * (log(N) - log(max(1, df)))`` (N = number of samples; an
      n-gram absent from every reference still counts in the hypothesis' norm, with weight ``tf * log(N)``);
    - per reference and order: ``sum_g min(h_g, r_g) * r_g / (|h| |r|)`` (the clipping that makes it "-D"), times
      the Gaussian length penalty ``exp(-(len_h - len_r)^2 / (2 sigma^2))``;
    - mean over the n orders, mean over references, times 10.

    pycocoevalcap measures lengths as numbers of bigrams, not words; the two give the same ``len_h - len_r``
    whenever both sentences have a word, and an empty sentence scores 0 either way, so words are used here.
    """
    check_caption_inputs(hypotheses, references)
    if not hypotheses:
        return []
    hyp_counts = [_ngram_counts(h, n) for h in hypotheses]
    ref_counts = [[_ngram_counts(r, n) for r in refs] for refs in references]

    document_frequency: Counter[tuple[str, ...]] = Counter()
    for refs in ref_counts:
        document_frequency.update(set().union(*refs))
    log_corpus_size = math.log(float(len(hypotheses)))

    def tfidf(counts: Counter[tuple[str, ...]]) -> tuple[list[dict[tuple[str, ...], float]], list[float]]:
        vectors: list[dict[tuple[str, ...], float]] = [{} for _ in range(n)]
        squared_norms = [0.0] * n
        for ngram, tf in counts.items():
            weight = float(tf) * (log_corpus_size - math.log(max(1.0, float(document_frequency[ngram]))))
            vectors[len(ngram) - 1][ngram] = weight
            squared_norms[len(ngram) - 1] += weight * weight
        return vectors, [math.sqrt(s) for s in squared_norms]

    scores = []
    for hypothesis, hyp, refs_text, refs in zip(hypotheses, hyp_counts, references, ref_counts, strict=True):
        hyp_vec, hyp_norm = tfidf(hyp)
        hyp_len = len(hypothesis.split())
        per_order = [0.0] * n
        for ref_text, ref in zip(refs_text, refs, strict=True):
            ref_vec, ref_norm = tfidf(ref)
            penalty = math.exp(-((hyp_len - len(ref_text.split())) ** 2) / (2.0 * sigma**2))
            for k in range(n):
                value = sum(min(w, ref_vec[k].get(g, 0.0)) * ref_vec[k].get(g, 0.0) for g, w in hyp_vec[k].items())
                if hyp_norm[k] != 0.0 and ref_norm[k] != 0.0:
                    value /= hyp_norm[k] * ref_norm[k]
                per_order[k] += value * penalty
        scores.append(10.0 * (sum(per_order) / n) / len(refs))
    return scores


class CIDErD(TextStateMetric):
    """Corpus CIDEr-D (Vedantam et al. 2015, as in the COCO caption evaluation code), synced across DDP ranks.

    ``update(hypotheses: list[str], references: list[list[str]])`` with tokenised strings (see the module
    docstring). Document frequencies come from the references of everything the metric has seen, on all
    ranks, so the texts are the state (gathered as UTF-8 bytes) and the score is computed in ``compute``.

    ``compute()`` -> scalar float64 tensor, the mean CIDEr-D over samples (what COCO's evaluation reports as
    "CIDEr"; papers often print it x100).
    ``compute_per_sample()`` -> float64 ``[N]``: one score per sample, gathered in rank order (rank 0's samples
    first), which under a ``DistributedSampler`` is not dataset order.

    Note that a ``DistributedSampler`` without ``drop_last`` repeats a few samples to even out the ranks; the
    repeats count as documents here as they would in any gathered evaluation.

    Args:
        n: largest n-gram order (4 in COCO).
        sigma: standard deviation of the Gaussian length penalty (6.0 in COCO).
        kwargs: torchmetrics ``Metric`` options (``dist_sync_fn``, ``process_group``, ``compute_on_cpu``...).
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0

    def __init__(self, n: int = 4, sigma: float = 6.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n < 1:
            raise ValueError(f"CIDErD: n must be >= 1, got {n}")
        if sigma <= 0:
            raise ValueError(f"CIDErD: sigma must be > 0, got {sigma}")
        self.n = n
        self.sigma = sigma
        self.add_text_state("hypotheses")
        self.add_text_state("references")  # flat; regrouped by reference_counts
        self.add_tensor_list_state("reference_counts", torch.int64)

    def update(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
        """Add a batch: one tokenised hypothesis per sample and a non-empty list of tokenised references."""
        check_caption_inputs(hypotheses, references)
        self.append_texts("hypotheses", hypotheses)
        self.append_texts("references", [ref for refs in references for ref in refs])
        self.append_tensor("reference_counts", torch.tensor([len(refs) for refs in references]))

    def _gathered(self) -> tuple[list[str], list[list[str]]]:
        hypotheses = self.texts("hypotheses")
        flat = self.texts("references")
        counts = self.tensor_state("reference_counts").tolist()
        if len(counts) != len(hypotheses) or sum(counts) != len(flat):
            raise RuntimeError(
                f"CIDErD state is inconsistent: {len(hypotheses)} hypotheses, {len(counts)} reference counts "
                f"adding up to {sum(counts)}, {len(flat)} references"
            )
        starts = np.cumsum([0, *counts]).tolist()
        return hypotheses, [flat[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]

    def _per_sample(self) -> Tensor:
        hypotheses, references = self._gathered()
        scores = cider_d_scores(hypotheses, references, n=self.n, sigma=self.sigma)
        return torch.tensor(scores, dtype=torch.float64, device=self.device)

    def compute(self) -> Tensor:
        """Mean CIDEr-D over every sample seen (0 before any update)."""
        scores = self._per_sample()
        return scores.mean() if scores.numel() else torch.zeros((), dtype=torch.float64, device=self.device)

    def compute_per_sample(self) -> Tensor:
        """CIDEr-D of every sample seen, float64 ``[N]`` (synced across ranks like ``compute``)."""
        with self.sync_context(
            dist_sync_fn=self.dist_sync_fn, process_group=self.process_group, should_sync=self.sync_on_compute
        ):
            return self._per_sample()


# ----------------------------------------------------------------------------------------------------------------------
# BLEU and the collection
# ----------------------------------------------------------------------------------------------------------------------


class CaptionBLEU(BLEUScore):
    """Corpus BLEU-``n_gram`` as the COCO caption evaluation computes it, on torchmetrics' ``BLEUScore``.

    Both use clipped n-gram counts (max count over a sample's references), uniform weights over orders 1..n and
    a corpus brevity penalty with each hypothesis' *closest* reference length. They differ in two places:

    1. Ties for the closest length: COCO takes the shorter reference, ``BLEUScore`` the first in list order.
       This class sorts each sample's references by length before handing them on, which makes the two agree
       (BLEU's clipped counts do not depend on the order of the references).
    2. A corpus with no matching n-gram of some order <= ``n_gram``: ``BLEUScore`` returns exactly 0; COCO adds
       1e-15 / 1e-9 to numerators / denominators and returns a tiny positive number (below 1e-3).
       Otherwise the epsilons move COCO's value by about 1e-9, below float32 resolution.

    Values are in [0, 1] (papers print x100). ``update(hypotheses, references)`` takes the same input as
    :class:`CIDErD`. ``full_state_update`` is False (the batch value does not need the accumulated state),
    which halves the cost of ``forward`` and allows ``merge_state``.
    """

    full_state_update = False

    def update(self, hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:  # type: ignore[override]
        """Add a batch: one tokenised hypothesis per sample and a non-empty list of tokenised references."""
        check_caption_inputs(hypotheses, references)
        by_length = [sorted(refs, key=lambda ref: len(ref.split())) for refs in references]
        super().update(hypotheses, by_length)


def caption_metric_collection(prefix: str | None = None, n: int = 4) -> MetricCollection:
    """``{"bleu1": .., "bleu{n}": CaptionBLEU(n_gram=k), "cider": CIDErD()}`` as one ``MetricCollection``.

    Call ``collection.update(hypotheses, references)`` with tokenised strings (see the module docstring), then
    ``collection.compute()`` -> ``{"bleu1": tensor, ..., "cider": tensor}`` (keys with ``prefix`` in front,
    e.g. ``prefix="val/"``). All members sync across DDP ranks on ``compute``.
    """
    metrics: dict[str, Metric] = {f"bleu{k}": CaptionBLEU(n_gram=k) for k in range(1, n + 1)}
    metrics["cider"] = CIDErD()
    return MetricCollection(metrics, prefix=prefix, compute_groups=False)
