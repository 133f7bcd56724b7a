"""Attention over a set of keys: additive (Bahdanau / Xu), dot and general (Luong), multiplicative (low-rank
bilinear, Kim et al. 2017), and a hard wrapper.

Every soft kind has the same interface:

    context, weights = attention(query, keys, mask=None, precomputed=None)

    query   [B, Dq]       what the decoder asks with (usually its hidden state)
    keys    [B, N, Dk]    what it attends over (image grid, frames, source words); values = keys
    mask    [B, N] bool   True = real key, False = padding (None: every key is real)
    context [B, Dk]       sum_n weights[:, n] * keys[:, n]
    weights [B, N]        a distribution over the real keys (float32); exactly 0 on masked keys,
                          and all 0 on a row with no real key (whose context is then 0)

A query may also be [B, Q, Dq]: Q queries over the same keys (the Q beams of one sample in beam search), giving
context [B, Q, Dk] and weights [B, Q, N]. The keys, their projection and the mask are then stored and read once
per key set rather than copied for every query; each query's result equals what it gets alone.

A decoder calls attention at every step over the same keys, so the projection of the keys is computed
once per sequence with ``precompute(keys)`` and passed back as ``precomputed=``; the result is the same
as without it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.distributions import Categorical

ATTENTION_KINDS = {
    "additive": "additive", "bahdanau": "additive",
    "dot": "dot", "luong_dot": "dot",
    "general": "general", "luong_general": "general",
    "multiplicative": "multiplicative", "mlb": "multiplicative",
}


@dataclass
class PrecomputedKeys:
    """The keys as a score function needs them, computed once per sequence by ``Attention.precompute``.

    Attributes:
        projected: [B, N, H] (additive: U k + b; multiplicative: tanh(U k + b)), [B, N, Dq] (general: W k), or
            the keys themselves (dot).
    """

    projected: Tensor

    def select(self, index: Tensor) -> PrecomputedKeys:
        """Rows index [B'] (e.g. the samples a beam search still decodes) -> precomputed keys of batch B'."""
        return replace(self, projected=self.projected.index_select(0, index))   # keeps a subclass and its fields


def masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dim of scores [B, N] with masked entries exactly 0 -> weights [B, N].

    Computed in float32 (or float64 if the scores are), so it is stable under bf16/fp16 autocast. A row with
    no real entry gives all zeros (not NaN), and its gradient is 0 (not NaN).
    """
    if scores.dtype not in (torch.float32, torch.float64):
        scores = scores.float()
    if mask is None:
        return torch.softmax(scores, dim=-1)
    if mask.dtype != torch.bool:
        raise TypeError(f"attention mask must be bool (True = real key), got {mask.dtype}")
    if mask.shape != scores.shape:
        raise ValueError(f"attention mask has shape {tuple(mask.shape)}, expected {tuple(scores.shape)} [B, N]")
    has_key = mask.any(dim=-1, keepdim=True)                              # [B, 1]
    # Fill masked entries with -inf only on rows that have a real key: an all -inf row would give NaN
    # weights and NaN gradients; such rows are zeroed after the softmax instead.
    scores = scores.masked_fill(~mask & has_key, float("-inf"))          # [B, N]
    weights = torch.softmax(scores, dim=-1)                               # [B, N]
    return weights.masked_fill(~has_key, 0.0)


class Attention(nn.Module):
    """Base class: subclasses define ``precompute`` (the keys' projection) and ``score``."""

    def precompute(self, keys: Tensor) -> PrecomputedKeys:
        """keys [B, N, Dk] -> their projection, to pass as ``precomputed=`` at every step of a sequence."""
        return PrecomputedKeys(keys)

    def score(self, query: Tensor, precomputed: PrecomputedKeys) -> Tensor:
        """query [B, Q, Dq] -> unnormalised scores [B, Q, N]."""
        raise NotImplementedError

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                precomputed: PrecomputedKeys | None = None) -> tuple[Tensor, Tensor]:
        """query [B, Dq] (or [B, Q, Dq]), keys [B, N, Dk], mask [B, N] bool | None -> (context [B, Dk],
        weights [B, N]) (or [B, Q, Dk], [B, Q, N]: see the module docstring)."""
        if keys.dim() != 3 or query.dim() not in (2, 3) or query.size(0) != keys.size(0):
            raise ValueError(f"attention expects query [B, Dq] or [B, Q, Dq] and keys [B, N, Dk], got query "
                             f"{tuple(query.shape)} and keys {tuple(keys.shape)}")
        if precomputed is None:
            precomputed = self.precompute(keys)
        elif precomputed.projected.shape[:2] != keys.shape[:2]:
            raise ValueError(f"precomputed keys are for shape {tuple(precomputed.projected.shape[:2])}, but keys "
                             f"are {tuple(keys.shape[:2])} [B, N]: precompute the keys this call attends over")
        single = query.dim() == 2
        queries = query.unsqueeze(1) if single else query                                # [B, Q, Dq]
        scores = self.score(queries, precomputed)                                        # [B, Q, N]
        if mask is not None:
            if mask.shape != keys.shape[:2]:
                raise ValueError(f"attention mask has shape {tuple(mask.shape)}, expected {tuple(keys.shape[:2])} "
                                 "[B, N]: one row per key set, True at real keys")
            mask = mask.unsqueeze(1).expand_as(scores)                                   # [B, Q, N]
        weights = masked_softmax(scores, mask)                                           # [B, Q, N]
        context = torch.bmm(weights.to(keys.dtype), keys)                                # [B, Q, Dk]
        return (context.squeeze(1), weights.squeeze(1)) if single else (context, weights)


class AdditiveAttention(Attention):
    """Bahdanau et al. 2015 / Xu et al. 2015: score(q, k) = v^T tanh(W q + U k + b); U k + b is precomputed once
    per sequence.

    ``build_attention`` builds the subclass ``modules.additive_score_cpu.CPUAdditiveAttention``, which computes the
    same scores faster on the CPU.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        """
        Args:
            query_dim: Dq, size of the query (the decoder state).
            key_dim: Dk, size of each key.
            hidden_dim: size of the space where query and keys are added (the attention MLP's width).
        """
        super().__init__()
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, hidden_dim)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def precompute(self, keys: Tensor) -> PrecomputedKeys:
        return PrecomputedKeys(self.key_proj(keys))                                      # [B, N, H] U k + b

    def score(self, query: Tensor, precomputed: PrecomputedKeys) -> Tensor:
        return self._score(precomputed.projected, self.query_proj(query))               # [B, N, H], [B, Q, H]

    def _score(self, keys: Tensor, queries: Tensor) -> Tensor:
        """keys U k + b [b, N, H], queries W q [b, Q, H] -> scores v^T tanh(W q + U k + b) [b, Q, N]."""
        hidden = (keys.unsqueeze(1) + queries.unsqueeze(2)).tanh_()                      # [b, Q, N, H]
        return self.v(hidden).squeeze(-1)                                                 # [b, Q, N]


class MultiplicativeAttention(Attention):
    """Low-rank bilinear attention (Kim et al. 2017, MLB): score(q, k) = v^T (tanh(W q) * tanh(U k + b)).

    The elementwise product makes each hidden unit a conjunction of a query feature and a key feature (e.g. "the
    question names red" and "this cell is red") in one step, where the additive form needs tanh's saturation
    to build it; tanh(U k + b) is precomputed once per sequence.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        """
        Args:
            query_dim: Dq, size of the query.
            key_dim: Dk, size of each key.
            hidden_dim: size of the space where query and keys are multiplied.
        """
        super().__init__()
        self.query_proj = nn.Linear(query_dim, hidden_dim)
        self.key_proj = nn.Linear(key_dim, hidden_dim)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def precompute(self, keys: Tensor) -> PrecomputedKeys:
        return PrecomputedKeys(torch.tanh(self.key_proj(keys)))                          # [B, N, H]

    def score(self, query: Tensor, precomputed: PrecomputedKeys) -> Tensor:
        # v^T (a * b) = (a * v)^T b: one batched product instead of a [B, Q, N, H] intermediate
        weighted = torch.tanh(self.query_proj(query)) * self.v.weight.squeeze(0)           # [B, Q, H]
        keys = precomputed.projected.to(weighted.dtype)                                 # [B, N, H]
        return torch.bmm(weighted, keys.transpose(1, 2))                                 # [B, Q, N]


class DotAttention(Attention):
    """Luong et al. 2015 "dot": score(q, k) = q^T k (needs Dq == Dk). No parameters."""

    def score(self, query: Tensor, precomputed: PrecomputedKeys) -> Tensor:
        keys = precomputed.projected                                                   # [B, N, D]
        if keys.size(-1) != query.size(-1):
            raise ValueError(f"dot attention needs query and key sizes equal, got {query.size(-1)} and "
                             f"{keys.size(-1)}: use 'general' or 'additive' attention")
        return torch.bmm(keys, query.transpose(1, 2)).transpose(1, 2)                  # [B, Q, N]


class GeneralAttention(Attention):
    """Luong et al. 2015 "general": score(q, k) = q^T W k; W k is precomputed once per sequence."""

    def __init__(self, query_dim: int, key_dim: int) -> None:
        """
        Args:
            query_dim: Dq, size of the query.
            key_dim: Dk, size of each key.
        """
        super().__init__()
        self.key_proj = nn.Linear(key_dim, query_dim, bias=False)

    def precompute(self, keys: Tensor) -> PrecomputedKeys:
        return PrecomputedKeys(self.key_proj(keys))                                    # [B, N, Dq]

    def score(self, query: Tensor, precomputed: PrecomputedKeys) -> Tensor:
        return torch.bmm(precomputed.projected, query.transpose(1, 2)).transpose(1, 2)  # [B, Q, N]


def build_attention(kind: str, query_dim: int, key_dim: int, hidden_dim: int) -> Attention:
    """Attention by name: additive|bahdanau, dot|luong_dot, general|luong_general, multiplicative|mlb.

    Args:
        kind: the name (case-insensitive).
        query_dim: Dq. key_dim: Dk (dot needs Dq == Dk).
        hidden_dim: width of the additive / multiplicative hidden layer (unused by dot and general).
    """
    canonical = ATTENTION_KINDS.get(str(kind).lower())
    if canonical is None:
        raise ValueError(f"unknown attention kind {kind!r}; valid choices: {', '.join(ATTENTION_KINDS)}")
    if canonical == "additive":
        from modules.additive_score_cpu import CPUAdditiveAttention  # here: that module imports this one

        return CPUAdditiveAttention(query_dim, key_dim, hidden_dim)
    if canonical == "multiplicative":
        return MultiplicativeAttention(query_dim, key_dim, hidden_dim)
    if canonical == "general":
        return GeneralAttention(query_dim, key_dim)
    if query_dim != key_dim:
        raise ValueError(f"attention {kind!r} (dot) needs query_dim == key_dim, got {query_dim} and {key_dim}; "
                         f"use 'general' or 'additive' attention")
    return DotAttention()


class HardAttentionOutput(NamedTuple):
    """What hard attention returns; ``context, weights = out[:2]`` reads like the soft kinds."""

    context: Tensor     # [B, Dk] the sampled key (training), or the expectation / argmax key (eval)
    weights: Tensor     # [B, N] the inner (soft) distribution the location is drawn from
    log_prob: Tensor    # [B] log p(sample) on rows whose context is the sample, else 0 (REINFORCE term)
    entropy: Tensor     # [B] entropy of weights (0 on a row with no real key), for an entropy bonus
    sample: Tensor      # [B] long: the location drawn (training) or the argmax (eval)
    stochastic: Tensor  # [B] bool: True where context is the sampled key (the rows REINFORCE applies to)


class HardAttention(nn.Module):
    """Xu et al. 2015 hard (stochastic) attention around any soft attention.

    Training: draw one location per row from the inner weights, s ~ Categorical(weights), and use that key
    as the context. The choice is not differentiable; the inner attention learns through REINFORCE on
    ``log_prob`` (reward minus a baseline, plus an entropy bonus), which the caller computes. With
    probability ``mix_soft_prob`` a row uses the soft expectation instead (as the authors' code did,
    which stabilises training); its ``log_prob`` is 0, since its loss does not depend on the sample.

    Evaluation: the expectation (the soft context, ``eval_mode="expectation"``, the paper's approximation)
    or the most likely key (``eval_mode="argmax"``). ``log_prob`` is 0.
    """

    def __init__(self, inner: Attention, eval_mode: str = "expectation", mix_soft_prob: float = 0.5) -> None:
        """
        Args:
            inner: the soft attention whose weights define the sampling distribution.
            eval_mode: "expectation" (soft context) or "argmax" (the most likely key) outside training.
            mix_soft_prob: probability that a training row uses the soft context instead of the sample.
        """
        super().__init__()
        if eval_mode not in ("expectation", "argmax"):
            raise ValueError(f"hard attention eval_mode {eval_mode!r}; valid choices: expectation, argmax")
        if not 0.0 <= mix_soft_prob <= 1.0:
            raise ValueError(f"hard attention mix_soft_prob must be in [0, 1], got {mix_soft_prob}")
        self.inner = inner
        self.eval_mode = eval_mode
        self.mix_soft_prob = mix_soft_prob

    def precompute(self, keys: Tensor) -> PrecomputedKeys:
        return self.inner.precompute(keys)

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor | None = None,
                precomputed: PrecomputedKeys | None = None) -> HardAttentionOutput:
        """query [B, Dq], keys [B, N, Dk], mask [B, N] bool | None -> HardAttentionOutput.

        (A query [B, Q, Dq] of Q queries per key set gives every output with a Q dimension after B.)"""
        soft_context, weights = self.inner(query, keys, mask, precomputed)             # [B, Dk], [B, N]
        length = weights.size(-1)
        has_key = weights.sum(dim=-1) > 0                                                # [B]
        # A row with no real key gets a uniform stand-in so the distribution is valid; its outputs are zeroed.
        probs = torch.where(has_key.unsqueeze(-1), weights, torch.full_like(weights, 1.0 / length))  # [B, N]
        distribution = Categorical(probs=probs, validate_args=False)
        # -sum p log p, exactly 0 for a one-hot row; the clamp keeps the gradient at p = 0 finite.
        entropy = -(probs * probs.clamp(min=torch.finfo(probs.dtype).tiny).log()).sum(dim=-1)   # [B]
        entropy = torch.where(has_key, entropy, torch.zeros_like(entropy))
        if self.training:
            sample = distribution.sample()                                               # [B]
            keep = torch.rand(has_key.shape, device=weights.device) >= self.mix_soft_prob  # [B]
            stochastic = has_key & keep                                                  # [B]
            log_prob = torch.where(stochastic, distribution.log_prob(sample), torch.zeros_like(entropy))
            context = torch.where(stochastic.unsqueeze(-1), _gather(keys, sample), soft_context)
        else:
            sample = weights.argmax(dim=-1)                                              # [B]
            stochastic = torch.zeros_like(has_key)
            log_prob = torch.zeros_like(entropy)
            if self.eval_mode == "argmax":
                context = torch.where(has_key.unsqueeze(-1), _gather(keys, sample), soft_context)
            else:
                context = soft_context
        return HardAttentionOutput(context, weights, log_prob, entropy, sample, stochastic)


def _gather(keys: Tensor, index: Tensor) -> Tensor:
    """keys [B, N, D], index [B] (or [B, Q]) -> keys[b, index[b]] as [B, D] (or [B, Q, D])."""
    rows = index.view(index.size(0), -1)                                                 # [B, Q]
    picked = keys.gather(1, rows.unsqueeze(-1).expand(-1, -1, keys.size(-1)))          # [B, Q, D]
    return picked.view(*index.shape, keys.size(-1))
