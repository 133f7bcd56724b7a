"""Batched beam search and greedy decoding over any step-wise attention decoder.

The decoder needs (``modules.decoders.AttentionLSTMDecoder`` has them):

    init_state(memory [B, N, D], mask [B, N] | None) -> state          (state.select(index [B']) reorders it)
    precompute(memory [B, N, D]) -> precomputed keys                    (.select(index [B']) reorders them)
    step(token [B*K], state, memory, mask, precomputed) -> (logits [B*K, V], attention [B*K, N], state)

In ``step`` the rows of token and state are K per memory, adjacent (K = beam_size; 1 in greedy decoding): the
memory, its mask and its precomputed keys stay one per sample, never copied for every beam.

Put the decoder in eval mode first (dropout off; hard attention uses its expectation).

Search: every sample keeps ``beam_size`` beams; all B * beam_size beams advance together, one decoder call per
time step (no loop over samples). At each step the 2 * beam_size best extensions of each sample are ranked;
an extension ending in EOS and ranked within the first beam_size is a finished hypothesis of that sample,
and the best beam_size extensions that do not end in EOS are the next beams. A sample stops searching when
its best extension (the highest total log-probability of all) ends in EOS, as OpenNMT-py does (so width 1 is
exactly greedy decoding), or at max_len. (Stopping once beam_size hypotheses have finished, as fairseq does, can
stop before the best path ends: with a confident model the EOS extensions of poor beams rank within the first
beam_size and fill the quota. A test model did exactly that, returning a translation scored -3.0 where greedy
decoding found the reference at -0.035.) If none of its beams has ended by max_len, its best unfinished beam is
returned (``finished=False``).

Lengths and scores: a hypothesis' length L counts its decoding steps (its words, plus EOS if it ended),
at most max_len. Its score is its total log-probability divided by the GNMT length penalty
((5 + L) / 6) ** length_penalty (Wu et al. 2016); length_penalty=0 ranks by raw log-probability, larger
values favour longer outputs. The best-scored finished hypothesis is returned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, overload

import torch
from torch import Tensor


class StepDecoder(Protocol):
    def init_state(self, memory: Tensor, memory_mask: Tensor | None) -> Any: ...
    def precompute(self, memory: Tensor) -> Any: ...
    def step(self, token: Tensor, state: Any, memory: Tensor, memory_mask: Tensor | None,
             precomputed: Any) -> tuple[Tensor, Tensor, Any]: ...


@dataclass
class Hypothesis:
    """The decoded output of one sample."""

    tokens: list[int]   # emitted word ids: no BOS, no EOS
    score: float        # log_prob / ((5 + length) / 6) ** length_penalty
    attention: Tensor   # [len(tokens), N] attention weights of the step that emitted each word (on CPU)
    log_prob: float     # total log-probability, including EOS when finished
    finished: bool      # False: no EOS by max_len (the best unfinished beam)


class Decoded(Sequence[Hypothesis]):
    """What ``beam_search`` / ``greedy_decode`` return: the B decoded outputs as padded tensors (on the decoding
    device, for batched metrics), and also a sequence of B :class:`Hypothesis` (built on the CPU on access)."""

    def __init__(self, tokens: Tensor, lengths: Tensor, attention: Tensor, score: Tensor, log_prob: Tensor,
                 finished: Tensor) -> None:
        """
        Args:
            tokens: [B, L] emitted word ids (no BOS, no EOS), -1 after each sample's length; L = the longest.
            lengths: [B] words per sample.
            attention: [B, L, N] the weights of the step that emitted each word, 0 after each sample's length.
            score, log_prob: [B] (see :class:`Hypothesis`).
            finished: [B] bool, False where no beam ended by max_len.
        """
        self.tokens, self.lengths, self.attention = tokens, lengths, attention
        self.score, self.log_prob, self.finished = score, log_prob, finished
        self._cpu: list[Hypothesis] | None = None

    @classmethod
    def from_hypotheses(cls, hypotheses: Sequence[Hypothesis]) -> Decoded:
        """Hypotheses made elsewhere (e.g. in tests) -> the padded form."""
        lengths = torch.tensor([len(h.tokens) for h in hypotheses], dtype=torch.long)      # [B]
        longest, positions = max(len(h.tokens) for h in hypotheses), hypotheses[0].attention.size(-1)
        tokens = torch.full((len(hypotheses), longest), -1, dtype=torch.long)               # [B, L]
        attention = torch.zeros(len(hypotheses), longest, positions)                        # [B, L, N]
        for b, hypothesis in enumerate(hypotheses):
            tokens[b, : len(hypothesis.tokens)] = torch.tensor(hypothesis.tokens, dtype=torch.long)
            attention[b, : len(hypothesis.tokens)] = hypothesis.attention.float()
        return cls(tokens, lengths, attention, torch.tensor([h.score for h in hypotheses]),
                   torch.tensor([h.log_prob for h in hypotheses]), torch.tensor([h.finished for h in hypotheses]))

    def _hypotheses(self) -> list[Hypothesis]:
        if self._cpu is None:
            tokens, attention = self.tokens.cpu(), self.attention.cpu()
            lengths, scores = self.lengths.tolist(), self.score.tolist()
            log_probs, finished = self.log_prob.tolist(), self.finished.tolist()
            self._cpu = [Hypothesis(tokens[i, :n].tolist(), scores[i], attention[i, :n], log_probs[i], finished[i])
                         for i, n in enumerate(lengths)]
        return self._cpu

    def __len__(self) -> int:
        return self.tokens.size(0)

    @overload
    def __getitem__(self, index: int) -> Hypothesis: ...
    @overload
    def __getitem__(self, index: slice) -> list[Hypothesis]: ...
    def __getitem__(self, index: int | slice) -> Hypothesis | list[Hypothesis]:
        return self._hypotheses()[index]

    def __iter__(self) -> Iterator[Hypothesis]:
        return iter(self._hypotheses())


def length_penalty_factor(length: Tensor | int, alpha: float) -> Tensor | float:
    """GNMT length penalty ((5 + length) / 6) ** alpha; length = decoding steps (words + EOS if any)."""
    return ((5.0 + length) / 6.0) ** alpha


@torch.no_grad()
def beam_search(decoder: StepDecoder, memory: Tensor, memory_mask: Tensor | None, bos_id: int, eos_id: int,
                beam_size: int = 5, max_len: int | Tensor = 20, length_penalty: float = 1.0) -> Decoded:
    """memory [B, N, D], memory_mask [B, N] bool | None -> the best hypothesis of each sample (B of them).

    Args:
        decoder: the step-wise decoder (in eval mode).
        memory, memory_mask: what it attends over, and which positions are real.
        bos_id, eos_id: the start token fed first, and the end token.
        beam_size: beams per sample (1 = greedy decoding).
        max_len: most decoding steps (a finished hypothesis has at most max_len - 1 words): one for every
            sample, or a [B] tensor of per-sample limits (so a sample's output does not depend on the batch).
        length_penalty: alpha of the GNMT length penalty (0 = none).
    """
    batch, positions = memory.shape[:2]
    limit = step_limits(max_len, batch, memory.device)                                    # [B]
    longest, shortest = (int(limit.max()), int(limit.min())) if batch else (0, 0)
    search = _Search.start(decoder, memory, memory_mask, bos_id)
    best = _Best.empty(batch, longest, positions, memory.device)
    for step in range(1, longest + 1):
        logits, weights, search.state = decoder.step(search.tokens, search.state, search.memory, search.memory_mask,
                                                     search.precomputed)                 # [A*beams, V], [A*beams, N]
        candidates = _rank_candidates(search, logits, beam_size, eos_id)
        _record_finished(best, search, candidates, beam_size, step, length_penalty)
        done = candidates.ends[:, 0]                           # [A] the best extension of all ends in EOS
        if done.all():
            break
        beams = _next_beams(candidates, beam_size, search.beams)
        stop = done
        if step >= shortest:  # no sample is at its own limit before the smallest one: no check, no host sync
            expired = ~done & (limit[search.active] <= step)                              # [A]
            _record_unfinished_at_limit(best, search, beams, weights, expired, step, length_penalty)
            stop = done | expired                                                         # [A]
            if stop.all():
                break
        _advance(search, _drop_stopped_rows(search, beams, stop), weights)
    return best.decoded()


@dataclass
class _Search:
    """The running beam search: its rows belong to the A samples still searching, ``beams`` rows each."""

    # A = B at first; a sample that stops leaves (its rows are dropped), so the step cost follows the samples still
    # decoding instead of the longest one. ``beams`` is 1 at the first step (every beam would start from the same
    # BOS, so only one is computed), then K (fewer while a tiny vocabulary has not K prefixes yet). The memory, its
    # mask and its precomputed keys keep one row per sample, never copied for every beam.
    active: Tensor              # [A] sample ids
    beams: int                  # rows per sample
    tokens: Tensor              # [A*beams] the last token of each beam (the decoder's next input)
    scores: Tensor              # [A, beams] total log-probability of each beam
    history: Tensor             # [A*beams, t] the words of each beam so far
    attention: Tensor           # [A*beams, t, N] the attention of the step that emitted each word
    state: Any                  # the decoder state, A*beams rows
    memory: Tensor              # [A, N, D]
    memory_mask: Tensor | None  # [A, N]
    precomputed: Any            # the decoder's precomputed keys, A rows

    @classmethod
    def start(cls, decoder: StepDecoder, memory: Tensor, memory_mask: Tensor | None, bos_id: int) -> _Search:
        """One BOS beam per sample, the decoder's initial state and its keys precomputed once per sequence."""
        batch, positions = memory.shape[:2]
        device = memory.device
        return cls(active=torch.arange(batch, device=device),
                   beams=1,
                   tokens=torch.full((batch,), bos_id, dtype=torch.long, device=device),           # [B]
                   scores=torch.zeros(batch, 1, device=device),                                     # [B, 1]
                   history=torch.zeros(batch, 0, dtype=torch.long, device=device),                  # [B, 0]
                   attention=torch.zeros(batch, 0, positions, device=device),                       # [B, 0, N]
                   state=decoder.init_state(memory, memory_mask),
                   memory=memory, memory_mask=memory_mask, precomputed=decoder.precompute(memory))


@dataclass
class _Best:
    """The hypothesis each sample returns so far (score -inf: none yet)."""

    score: Tensor       # [B] log_prob / length penalty
    log_prob: Tensor    # [B]
    length: Tensor      # [B] words
    tokens: Tensor      # [B, longest] words, anything after length
    attention: Tensor   # [B, longest, N]
    unfinished: Tensor  # [B] bool: no EOS by the sample's limit (its best beam then)

    @classmethod
    def empty(cls, batch: int, longest: int, positions: int, device: torch.device) -> _Best:
        """No hypothesis yet for any of ``batch`` samples."""
        return cls(score=torch.full((batch,), float("-inf"), device=device),
                   log_prob=torch.full((batch,), float("-inf"), device=device),
                   length=torch.zeros(batch, dtype=torch.long, device=device),
                   tokens=torch.zeros(batch, longest, dtype=torch.long, device=device),
                   attention=torch.zeros(batch, longest, positions, device=device),
                   unfinished=torch.zeros(batch, dtype=torch.bool, device=device))

    def decoded(self) -> Decoded:
        """The search's result: the padded Decoded form."""
        return _decoded(self.tokens, self.length, self.score, self.log_prob, self.attention, ~self.unfinished)


@dataclass
class _Candidates:
    """The best one-word extensions of each searching sample's beams (2K of them, fewer if V is tiny), best first."""

    scores: Tensor  # [A, 2K] total log-probability
    tokens: Tensor  # [A, 2K] the word each appends
    source: Tensor  # [A, 2K] the row (beam) each extends
    ends: Tensor    # [A, 2K] bool: the word is EOS
    vocab: int      # V

    @property
    def rank(self) -> Tensor:
        """[2K] the position of each extension (0 = best)."""
        return torch.arange(self.scores.size(1), device=self.scores.device)


@dataclass
class _Beams:
    """The next beams of each searching sample (K of them, fewer if V is tiny), best first."""

    scores: Tensor  # [A, K] total log-probability
    tokens: Tensor  # [A, K] the word each appends
    source: Tensor  # [A, K] the row (beam) each extends


def _rank_candidates(search: _Search, logits: Tensor, k: int, eos_id: int) -> _Candidates:
    """logits [A*beams, V] -> the 2K best extensions of each sample (2K: at most K end in EOS, K others go on)."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)                                 # [A*beams, V]
    searching, vocab, beams = search.active.numel(), log_probs.size(-1), search.beams
    if vocab < 2:
        raise ValueError("beam_search needs a vocabulary with at least one word besides EOS")
    offsets = (torch.arange(searching, device=logits.device) * beams).unsqueeze(1)       # [A, 1] first row
    totals = (search.scores.view(-1, 1) + log_probs).view(searching, beams * vocab)      # [A, beams*V]
    scores, index = totals.topk(min(2 * k, beams * vocab), dim=1)                         # [A, 2K] best first
    tokens = index % vocab                                                                # [A, 2K]
    source = offsets + torch.div(index, vocab, rounding_mode="floor")                     # [A, 2K] row
    return _Candidates(scores, tokens, source, tokens == eos_id, vocab)


def _record_finished(best: _Best, search: _Search, candidates: _Candidates, k: int, step: int,
                     length_penalty: float) -> None:
    """EOS extensions ranked within the first K end hypotheses: keep each sample's best one that beats its best."""
    # finite only: a word the decoder rules out (-inf) ends no hypothesis, even ranked within K in a tiny vocabulary
    finishing = candidates.ends & (candidates.rank < k) & torch.isfinite(candidates.scores)   # [A, 2K]
    normalized = candidates.scores / length_penalty_factor(step, length_penalty)            # [A, 2K]
    new_best, position = normalized.masked_fill(~finishing, float("-inf")).max(dim=1)      # [A], [A]
    improves = new_best > best.score[search.active]                                         # [A]
    if improves.any():
        samples = search.active[improves]                                                   # [I] sample ids
        position = position[improves].unsqueeze(1)                                         # [I, 1]
        source = candidates.source[improves].gather(1, position).squeeze(1)                 # [I] rows
        words = step - 1                                                                    # EOS is no word
        best.score[samples] = new_best[improves]
        best.log_prob[samples] = candidates.scores[improves].gather(1, position).squeeze(1)
        best.length[samples] = words
        best.tokens[samples, :words] = search.history.index_select(0, source)
        best.attention[samples, :words] = search.attention.index_select(0, source)


def _next_beams(candidates: _Candidates, k: int, beams: int) -> _Beams:
    """The K best extensions that do not end in EOS, kept in score order."""
    # at least K among the 2K, since each beam has one EOS extension; fewer only if the vocabulary is tiny
    width = candidates.scores.size(1)
    count = min(k, beams * (candidates.vocab - 1))
    # EOS extensions sort after all others (rank + 2K), the others keep their rank: the first K are the next beams
    order = (candidates.ends.long() * width + candidates.rank).topk(count, dim=1, largest=False).indices   # [A, K]
    return _Beams(candidates.scores.gather(1, order), candidates.tokens.gather(1, order),
                  candidates.source.gather(1, order))


def _record_unfinished_at_limit(best: _Best, search: _Search, beams: _Beams, weights: Tensor, expired: Tensor,
                                step: int, length_penalty: float) -> None:
    """Samples that stop at their step limit (``expired`` [A]) with no finished hypothesis return their best beam."""
    never = expired & (best.score[search.active] == float("-inf"))                         # [A]
    if not never.any():
        return
    samples, first = search.active[never], beams.source[never, 0]                            # [U], [U] rows
    best.log_prob[samples] = beams.scores[never, 0]
    best.score[samples] = beams.scores[never, 0] / length_penalty_factor(step, length_penalty)
    best.length[samples] = step                                                              # no EOS: all words
    best.tokens[samples, :step] = torch.cat([search.history.index_select(0, first), beams.tokens[never, :1]], dim=1)
    last = weights.float().index_select(0, first).unsqueeze(1)                               # [U, 1, N]
    best.attention[samples, :step] = torch.cat([search.attention.index_select(0, first), last], dim=1)
    best.unfinished[samples] = True


def _drop_stopped_rows(search: _Search, beams: _Beams, stop: Tensor) -> _Beams:
    """Samples that stop (``stop`` [A]) leave: drop their memory, mask, precomputed keys and next beams."""
    # (their decoder state rows go in _advance, which gathers only the kept beams' source rows)
    if not stop.any():
        return beams
    keep = ~stop                                                                          # [A]
    kept = keep.nonzero().squeeze(1)                                                      # [A']
    # (index_select: row gathers by a long index are several times faster on the CPU than x[index])
    search.memory = search.memory.index_select(0, kept)                                   # [A', N, D]
    search.memory_mask = None if search.memory_mask is None else search.memory_mask.index_select(0, kept)
    search.precomputed = search.precomputed.select(kept)
    search.active = search.active[keep]                                                   # [A']
    return _Beams(beams.scores[keep], beams.tokens[keep], beams.source[keep])             # [A', K] each


def _advance(search: _Search, beams: _Beams, weights: Tensor) -> None:
    """Move to ``beams``: each takes its source row's history, attention and state, plus its word and attention."""
    # weights [A*beams, N]: this step's attention, by the rows before the step (as ``source`` counts them)
    source, tokens = beams.source.view(-1), beams.tokens.view(-1)                          # [A*K], [A*K]
    # (index_select: row gathers by a long index are several times faster on the CPU than x[index])
    search.history = torch.cat([search.history.index_select(0, source), tokens.unsqueeze(1)], dim=1)  # [A*K, t]
    latest = weights.float().index_select(0, source).unsqueeze(1)                                     # [A*K, 1, N]
    search.attention = torch.cat([search.attention.index_select(0, source), latest], dim=1)         # [A*K, t, N]
    search.state = search.state.select(source)
    search.tokens, search.scores, search.beams = tokens, beams.scores, beams.scores.size(1)


@torch.no_grad()
def greedy_decode(decoder: StepDecoder, memory: Tensor, memory_mask: Tensor | None, bos_id: int, eos_id: int,
                  max_len: int | Tensor = 20, length_penalty: float = 1.0) -> Decoded:
    """The most likely word at each step; same arguments and results as ``beam_search`` (width 1)."""
    batch = memory.size(0)
    device = memory.device
    limit = step_limits(max_len, batch, device)                                           # [B]
    state = decoder.init_state(memory, memory_mask)
    precomputed = decoder.precompute(memory)
    token = torch.full((batch,), bos_id, dtype=torch.long, device=device)                # [B]
    total = torch.zeros(batch, device=device)                                             # [B]
    done = torch.zeros(batch, dtype=torch.bool, device=device)                            # [B] ended with EOS
    length = torch.zeros(batch, dtype=torch.long, device=device)                          # [B] words
    emitted, attention = [], []
    for step in range(1, (int(limit.max()) if batch else 1) + 1):
        logits, weights, state = decoder.step(token, state, memory, memory_mask, precomputed)
        best, token = torch.log_softmax(logits.float(), dim=-1).max(dim=-1)               # [B], [B]
        running = ~done & (step <= limit)                                                 # [B]
        total = torch.where(running, total + best, total)
        ended = running & (token == eos_id)
        length = torch.where(running & ~ended, length + 1, length)
        emitted.append(token)
        attention.append(weights.float())
        done = done | ended
        if (done | (limit <= step)).all():
            break
    steps = length + done.long()                                                          # [B] words + EOS
    score = total / length_penalty_factor(steps.double(), length_penalty).float()  # as beam_search
    return _decoded(torch.stack(emitted, dim=1), length, score, total, torch.stack(attention, dim=1), done)


def step_limits(max_len: int | Tensor, batch: int, device: torch.device) -> Tensor:
    """``max_len`` (one limit, or [B] per-sample limits) -> long [B] on ``device``, each >= 1."""
    if isinstance(max_len, Tensor):
        if max_len.shape != (batch,):
            raise ValueError(f"max_len must be an int or a [B] = [{batch}] tensor, got shape {tuple(max_len.shape)}")
        limit = max_len.to(device=device, dtype=torch.long)
    else:
        limit = torch.full((batch,), int(max_len), dtype=torch.long, device=device)
    if (limit < 1).any():
        raise ValueError(f"max_len must be >= 1 decoding step, got {limit.min().item()}")
    return limit


def _decoded(tokens: Tensor, length: Tensor, score: Tensor, log_prob: Tensor, attention: Tensor,
             finished: Tensor) -> Decoded:
    """Batched results (tokens [B, T], attention [B, T, N], the rest [B]; anything may follow each length) ->
    Decoded, cut to the longest output and padded (-1 / 0) after each length."""
    longest = int(length.max()) if length.numel() else 0
    tokens, attention = tokens[:, :longest], attention[:, :longest]
    after = torch.arange(longest, device=tokens.device).unsqueeze(0) >= length.unsqueeze(1)   # [B, L]
    return Decoded(tokens.masked_fill(after, -1), length, attention.masked_fill(after.unsqueeze(-1), 0.0), score,
                   log_prob, finished)
