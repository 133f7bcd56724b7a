"""Fast paths of the additive attention score on the CPU; ``build_attention("additive", ...)`` builds this class.

``CPUAdditiveAttention`` has ``AdditiveAttention``'s parameters (and state_dict keys) and the same scores up to float
rounding; it differs only in how it computes them where that is faster:

- Chunking (``CPU_SCORE_CHUNK``): on the CPU the [B, Q, N, H] intermediate is built a few samples at a time, so it
  stays in cache instead of being a fresh allocation of B * Q * N * H floats at every decoding step. Off the CPU the
  parent's single kernel per step is used.
- Exponential form (``EXP_FORM_CPU``): PyTorch's CPU tanh is vectorised for AVX-512 but slow below it. There, when
  the keys are precomputed without autograd (beam search, greedy decoding, evaluation), the score uses
  v^T tanh(x) = 2 v^T sigmoid(2x) - sum(v) with x = (U k + b) + W q and
      sigmoid(2x) = 1 / (1 + exp(-2 (U k + b)) * exp(-2 W q)),
  the key factor computed once per sequence (``ExpFormKeys``) and the query factor once per step, so the per-step
  [B, Q, N, H] work is a multiply-add and a reciprocal instead of an exponential. Training keeps the tanh graph.
- Fused score (``fuse_additive_scores``; compile_decoding=true): the exponential form as one compiled loop instead
  of a [B, Q, N, H] intermediate written and read by three eager ops. Only that form, because a compiled tanh form
  was no faster than the eager one.

The figures behind these choices are in benchmarks/results/additive_score_forms.md and beam_search_*.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
from torch import Tensor, nn

from modules.attention import AdditiveAttention, PrecomputedKeys

log = logging.getLogger(__name__)

CPU_SCORE_CHUNK = 1 << 20   # elements (4 MiB of float32) of the additive [B, Q, N, H] intermediate per chunk
# CPU capabilities whose tanh is slow enough for the exponential form to pay (benchmarks/additive_score_forms.py).
EXP_FORM_CPU = ("DEFAULT", "AVX2")
# Keys with |U k + b| > EXP_FORM_KEY_LIMIT are scored with tanh: within it their factor is a finite, non-zero float
# (e^+-80), so a product with any query factor (0 or inf included) is never inf * 0 = NaN.
EXP_FORM_KEY_LIMIT = 40.0


def exp_form_is_faster(device: torch.device) -> bool:
    return device.type == "cpu" and torch.backends.cpu.get_cpu_capability() in EXP_FORM_CPU


@dataclass
class ExpFormKeys(PrecomputedKeys):
    """Additive keys for the exponential form: ``projected`` holds exp(-2 (U k + b)) [B, N, H]."""


def _fused_exp_score(keys: Tensor, queries: Tensor, v: Tensor) -> Tensor:
    """Key factors exp(-2 (U k + b)) [b, N, H], query factors exp(-2 W q) [b, Q, H], v [H] -> scores [b, Q, N]."""
    return 2 * (v / (1 + keys.unsqueeze(1) * queries.unsqueeze(2))).sum(-1) - v.sum()


@cache
def compiled_score() -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """The fused exponential-form score, compiled on first use (dynamic shapes: beams and samples vary while
    decoding)."""
    return torch.compile(_fused_exp_score, dynamic=True)


def fuse_additive_scores(module: nn.Module) -> int:
    """Every CPUAdditiveAttention inside ``module`` scores with the compiled fused kernel where it uses the
    exponential form (inference on CPUs in EXP_FORM_CPU) -> how many attentions. Training (autograd) and the tanh
    form stay eager. If compiling fails (inductor needs a C++ compiler), a warning is logged and the attention goes
    back to eager scores."""
    attentions = [m for m in module.modules() if isinstance(m, CPUAdditiveAttention)]
    for attention in attentions:
        attention.fused_inference = True
    return len(attentions)


class CPUAdditiveAttention(AdditiveAttention):
    """``AdditiveAttention`` with the CPU's chunked, exponential and fused scores (see the module docstring). Off the
    CPU it is the parent; the exponential form only takes keys precomputed without autograd on a CPU in
    EXP_FORM_CPU, within EXP_FORM_KEY_LIMIT, and the fused score only scores without autograd."""

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__(query_dim, key_dim, hidden_dim)
        self.fused_inference = False   # see fuse_additive_scores

    def precompute(self, keys: Tensor) -> PrecomputedKeys:
        precomputed = super().precompute(keys)                                          # U k + b [B, N, H]
        projected = precomputed.projected
        if (exp_form_is_faster(projected.device) and not projected.requires_grad and projected.numel()
                and projected.abs().amax() <= EXP_FORM_KEY_LIMIT):
            return ExpFormKeys(projected.mul_(-2).exp_())                                # exp(-2 (U k + b))
        return precomputed

    def score(self, query: Tensor, precomputed: PrecomputedKeys) -> Tensor:
        exponential = isinstance(precomputed, ExpFormKeys)
        keys = precomputed.projected                                                    # [B, N, H]
        if not exponential and keys.device.type != "cpu":
            return super().score(query, precomputed)                                    # one kernel per step
        queries = self.query_proj(query)                                                # [B, Q, H]
        if exponential:
            queries = queries.mul(-2).exp_()                                             # [B, Q, H] exp(-2 W q)
            if self.fused_inference and not torch.is_grad_enabled():
                scores = self._fused_score(keys, queries)
                if scores is not None:
                    return scores
        batch, per_sample = keys.size(0), queries.size(1) * keys.size(1) * keys.size(2)
        chunk = max(1, CPU_SCORE_CHUNK // per_sample) if keys.device.type == "cpu" else batch
        if chunk >= batch:
            return self._score(keys, queries, exponential)
        return torch.cat([self._score(keys[s:s + chunk], queries[s:s + chunk], exponential)
                          for s in range(0, batch, chunk)])

    def _fused_score(self, keys: Tensor, queries: Tensor) -> Tensor | None:
        """Key and query factors -> the compiled fused score [B, Q, N], or None (eager from now on) if it cannot be
        compiled here."""
        try:
            return compiled_score()(keys, queries, self.v.weight.view(-1))
        except Exception as error:  # noqa: BLE001 - any compiler failure: the eager score is the same function
            log.warning(f"fused attention score unavailable, scoring eagerly instead: {type(error).__name__}: "
                        f"{str(error).splitlines()[0] if str(error) else ''}")
            self.fused_inference = False
            return None

    def _score(self, keys: Tensor, queries: Tensor, exponential: bool = False) -> Tensor:
        """keys [b, N, H], projected queries [b, Q, H] (their factors exp(-2 .) when ``exponential``) -> scores
        [b, Q, N]."""
        if not exponential:
            return super()._score(keys, queries)
        # v^T tanh(x) = 2 v^T sigmoid(2x) - sum(v), sigmoid(2x) = 1 / (1 + keys * queries)
        one = keys.new_ones(())
        hidden = torch.addcmul(one, keys.unsqueeze(1), queries.unsqueeze(2)).reciprocal_()  # [b, Q, N, H]
        return (2 * self.v(hidden) - self.v.weight.sum()).squeeze(-1)                     # [b, Q, N]
