"""Batched beam search: equals one-sample-at-a-time search, width 1 equals greedy, no-EOS fallback, attention."""

import copy

import pytest
import torch
import torch.nn.functional as F

from modules.beam_search import (
    Decoded,
    _advance,
    _Beams,
    _Best,
    _Candidates,
    _drop_stopped_rows,
    _next_beams,
    _rank_candidates,
    _record_finished,
    _record_unfinished_at_limit,
    _Search,
    beam_search,
    greedy_decode,
    length_penalty_factor,
)
from modules.decoders import AttentionLSTMDecoder

V, E, H, D, N, B = 12, 8, 16, 6, 5, 6
PAD, BOS, EOS, MAX_LEN = 0, 1, 2, 8


def train_briefly(luong: bool) -> AttentionLSTMDecoder:
    """A decoder trained a few steps to emit, for sample i, i + 1 words then EOS: its outputs end at
    various lengths and it is still unsure enough that beam search and greedy decoding disagree."""
    torch.manual_seed(0)
    extra = dict(attention="general", attention_query="current", deep_output=False) if luong else {}
    decoder = AttentionLSTMDecoder(V, E, H, D, dropout=0.0, input_feeding=True, **extra)
    memory, mask = memory_batch()
    generator = torch.Generator().manual_seed(0)
    sequences = torch.full((B, MAX_LEN + 1), PAD)                                  # [B, MAX_LEN + 1]
    for i in range(B):
        sequences[i, 0], sequences[i, i + 2] = BOS, EOS
        sequences[i, 1:i + 2] = torch.randint(3, V, (i + 1,), generator=generator)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-2)
    for _ in range(50):
        optimizer.zero_grad()
        logits = decoder(memory, mask, sequences[:, :-1]).logits                  # [B, MAX_LEN, V]
        loss = F.cross_entropy(logits.reshape(-1, V), sequences[:, 1:].reshape(-1), ignore_index=PAD)
        loss.backward()
        optimizer.step()
        if loss.item() < 1.5:
            break
    return decoder.eval()


@pytest.fixture(scope="module")
def decoders() -> dict[bool, AttentionLSTMDecoder]:
    return {luong: train_briefly(luong) for luong in (False, True)}


def make_decoder(decoders, luong: bool = False, never_ends: bool = False) -> AttentionLSTMDecoder:
    decoder = decoders[luong]
    if never_ends:
        decoder = copy.deepcopy(decoder)
        with torch.no_grad():
            decoder.classifier.bias[EOS] = float("-inf")   # EOS logit -inf: no beam can end
    return decoder


def memory_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    memory = torch.randn(B, N, D, generator=generator)   # [B, N, D]
    mask = torch.ones(B, N, dtype=torch.bool)            # [B, N]
    mask[1, 3:] = False
    mask[4, 2:] = False
    return memory, mask


def assert_same(a, b, exact: bool = False):
    assert a.tokens == b.tokens and a.finished == b.finished
    if exact:
        # same words, same scores to float resolution: beam search drops the rows of finished samples, so its
        # matmuls run on other batch shapes than greedy's, which may change the last bit of a sum
        assert a.score == pytest.approx(b.score, rel=0, abs=1e-6)
        assert a.log_prob == pytest.approx(b.log_prob, rel=0, abs=1e-6)
        torch.testing.assert_close(a.attention, b.attention, rtol=0, atol=1e-6)
    else:
        assert a.score == pytest.approx(b.score, rel=1e-5, abs=1e-5)
        torch.testing.assert_close(a.attention, b.attention)


# alpha=3 favours long outputs: a sample that is done must stop collecting hypotheses while others search.
@pytest.mark.parametrize(("beam_size", "luong", "max_len", "alpha"), [
    (3, False, MAX_LEN, 1.0), (5, True, MAX_LEN, 1.0), (3, False, 3, 1.0), (2, False, MAX_LEN, 3.0)])
def test_batched_equals_one_sample_at_a_time(decoders, beam_size, luong, max_len, alpha):
    decoder = make_decoder(decoders, luong)
    memory, mask = memory_batch()
    batched = beam_search(decoder, memory, mask, BOS, EOS, beam_size=beam_size, max_len=max_len,
                          length_penalty=alpha)
    assert len(batched) == B
    for i in range(B):
        alone = beam_search(decoder, memory[i:i + 1], mask[i:i + 1], BOS, EOS, beam_size=beam_size,
                            max_len=max_len, length_penalty=alpha)
        assert len(alone) == 1
        assert_same(batched[i], alone[0])
    lengths = {len(h.tokens) for h in batched if h.finished}
    assert len(lengths) > 1  # the check covers hypotheses that ended at different steps
    if max_len == 3:
        assert any(not h.finished and len(h.tokens) == 3 for h in batched)


@pytest.mark.parametrize(("luong", "never_ends"), [(False, False), (True, False), (False, True)])
def test_width_one_equals_greedy(decoders, luong, never_ends):
    decoder = make_decoder(decoders, luong, never_ends)
    memory, mask = memory_batch()
    greedy = greedy_decode(decoder, memory, mask, BOS, EOS, max_len=MAX_LEN)
    beam = beam_search(decoder, memory, mask, BOS, EOS, beam_size=1, max_len=MAX_LEN)
    for g, b in zip(greedy, beam, strict=True):
        assert_same(g, b, exact=True)
    lengths = {len(h.tokens) for h in greedy}
    assert lengths == {MAX_LEN} if never_ends else len(lengths) > 1


@pytest.mark.parametrize("beam_size", [1, 4])
def test_never_ending_model_returns_best_unfinished_hypothesis(decoders, beam_size):
    decoder = make_decoder(decoders, never_ends=True)
    memory, mask = memory_batch()
    results = beam_search(decoder, memory, mask, BOS, EOS, beam_size=beam_size, max_len=MAX_LEN)
    assert len(results) == B
    for hypothesis in results:
        assert len(hypothesis.tokens) == MAX_LEN and not hypothesis.finished
        assert EOS not in hypothesis.tokens and BOS not in hypothesis.tokens
        assert hypothesis.score == pytest.approx(hypothesis.log_prob / ((5 + MAX_LEN) / 6))
        assert hypothesis.attention.shape == (MAX_LEN, N)


def test_beam_beats_or_matches_greedy_and_scores_follow_the_length_penalty(decoders):
    decoder = make_decoder(decoders)
    memory, mask = memory_batch()
    differ = 0
    for alpha in (0.0, 1.0):
        greedy = greedy_decode(decoder, memory, mask, BOS, EOS, max_len=MAX_LEN, length_penalty=alpha)
        beam = beam_search(decoder, memory, mask, BOS, EOS, beam_size=4, max_len=MAX_LEN, length_penalty=alpha)
        for g, b in zip(greedy, beam, strict=True):
            assert b.finished and g.finished
            if alpha == 0.0:  # raw log-probabilities: the wider search never finds a worse sequence
                assert b.score >= g.score - 1e-6
            differ += g.tokens != b.tokens
            steps = len(b.tokens) + int(b.finished)
            assert b.score == pytest.approx(b.log_prob / length_penalty_factor(steps, alpha), rel=1e-6)
            assert b.log_prob <= 0
    assert differ > 0  # the model is unsure enough for the searches to disagree somewhere


@pytest.mark.parametrize("luong", [False, True])
def test_returned_attention_is_that_of_each_emitted_word(decoders, luong):
    decoder = make_decoder(decoders, luong)
    memory, mask = memory_batch()
    results = beam_search(decoder, memory, mask, BOS, EOS, beam_size=3, max_len=MAX_LEN)
    assert any(len(h.tokens) > 1 for h in results)
    for i, (hypothesis, sample_mask) in enumerate(zip(results, mask, strict=True)):
        assert hypothesis.attention.shape == (len(hypothesis.tokens), N)
        torch.testing.assert_close(hypothesis.attention.sum(-1), torch.ones(len(hypothesis.tokens)))
        assert (hypothesis.attention[:, ~sample_mask] == 0).all()
        # The rows are those of the emitted words: teacher-forcing the hypothesis gives the same maps,
        # and its log-probability gives the same total.
        inputs = torch.tensor([[BOS, *hypothesis.tokens]])                          # [1, L + 1]
        out = decoder(memory[i:i + 1], mask[i:i + 1], inputs)
        torch.testing.assert_close(hypothesis.attention, out.attention[0, :-1], atol=1e-5, rtol=1e-5)
        targets = torch.tensor([*hypothesis.tokens, EOS])
        log_prob = torch.log_softmax(out.logits[0], -1).gather(1, targets[:, None]).sum()
        assert hypothesis.log_prob == pytest.approx(log_prob.item(), abs=1e-4)


def test_unmasked_memory_and_decoder_left_unchanged(decoders):
    decoder = make_decoder(decoders)
    memory, _ = memory_batch()
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    results = beam_search(decoder, memory, None, BOS, EOS, beam_size=2, max_len=MAX_LEN)
    assert len(results) == B and all(h.attention.shape[1] == N for h in results)
    assert all(torch.equal(before[k], v) for k, v in decoder.state_dict().items())


@pytest.mark.parametrize("beam_size", [1, 3])
def test_padded_tensors_match_the_hypotheses_they_hold(decoders, beam_size):
    """beam_search returns padded tensors (-1 / 0 after each length, cut to the longest) that say the same as
    its per-sample Hypothesis view, and from_hypotheses rebuilds the same tensors."""
    decoder = make_decoder(decoders)
    memory, mask = memory_batch()
    decoded = beam_search(decoder, memory, mask, BOS, EOS, beam_size=beam_size, max_len=MAX_LEN)
    lengths = decoded.lengths.tolist()
    assert decoded.tokens.shape[1] == max(lengths) and len(decoded) == memory.size(0)
    for b, hypothesis in enumerate(decoded):
        n = lengths[b]
        assert decoded.tokens[b, :n].tolist() == hypothesis.tokens
        assert (decoded.tokens[b, n:] == -1).all() and (decoded.attention[b, n:] == 0).all()
        torch.testing.assert_close(decoded.attention[b, :n], hypothesis.attention)
    rebuilt = Decoded.from_hypotheses(list(decoded))
    assert torch.equal(rebuilt.tokens, decoded.tokens) and torch.equal(rebuilt.attention, decoded.attention)
    assert decoded[1:3] == list(decoded)[1:3]


@pytest.mark.parametrize(("beam_size", "never_ends"), [(3, False), (3, True), (1, False), (1, True)])
def test_per_sample_step_limits_equal_each_sample_searched_with_its_own_limit(decoders, beam_size, never_ends):
    """max_len as a [B] tensor: each sample's output equals its search alone with that scalar limit (so an
    output does not depend on which samples share its batch); also for greedy decoding."""
    decoder = make_decoder(decoders, never_ends=never_ends)
    memory, mask = memory_batch()
    limits = torch.tensor([2, 8, 3, 5, 1, 6])                                              # [B]
    batched = beam_search(decoder, memory, mask, BOS, EOS, beam_size=beam_size, max_len=limits)
    greedy = greedy_decode(decoder, memory, mask, BOS, EOS, max_len=limits)
    for i, limit in enumerate(limits.tolist()):
        alone = beam_search(decoder, memory[i:i + 1], mask[i:i + 1], BOS, EOS, beam_size=beam_size, max_len=limit)
        assert_same(batched[i], alone[0])
        assert len(batched[i].tokens) <= limit
        if beam_size == 1:
            assert_same(greedy[i], alone[0], exact=True)
    if never_ends:   # every sample stopped exactly at its own limit
        assert [len(h.tokens) for h in batched] == limits.tolist()
        assert not batched.finished.any()


def test_step_limits_must_match_the_batch_and_be_positive(decoders):
    decoder = make_decoder(decoders)
    memory, mask = memory_batch()
    with pytest.raises(ValueError, match=r"\[B\] = \[6\] tensor, got shape \(5,\)"):
        beam_search(decoder, memory, mask, BOS, EOS, max_len=torch.full((5,), 4))
    with pytest.raises(ValueError, match=">= 1 decoding step, got 0"):
        greedy_decode(decoder, memory, mask, BOS, EOS, max_len=torch.tensor([3, 0, 3, 3, 3, 3]))


def test_tiny_vocabulary_keeps_as_many_beams_as_there_are_words():
    """With two words and EOS, K beams cannot all differ at first: the search keeps fewer beams
    until it has K prefixes, and still equals the one-sample-at-a-time search."""
    torch.manual_seed(3)
    decoder = AttentionLSTMDecoder(3, E, H, D, dropout=0.0).eval()      # words 0, 1 and EOS = 2
    memory, mask = memory_batch()
    batched = beam_search(decoder, memory, mask, 0, EOS, beam_size=5, max_len=4)
    for i in range(B):
        alone = beam_search(decoder, memory[i:i + 1], mask[i:i + 1], 0, EOS, beam_size=5, max_len=4)
        assert_same(batched[i], alone[0])
        assert set(batched[i].tokens) <= {0, 1}
    with pytest.raises(ValueError, match="besides EOS"):
        beam_search(AttentionLSTMDecoder(1, E, H, D).eval(), memory, mask, 0, 0, beam_size=2, max_len=3)


class ScriptedState:
    """State of ScriptedDecoder: the step count and, per row, whether the beam ever emitted the unlikely word."""

    def __init__(self, steps: int, deviated: torch.Tensor) -> None:
        self.steps, self.deviated = steps, deviated                                # int, [R] bool

    def select(self, index: torch.Tensor) -> "ScriptedState":
        return ScriptedState(self.steps, self.deviated[index])


class ScriptedKeys:
    def select(self, index: torch.Tensor) -> "ScriptedKeys":
        return self


class ScriptedDecoder:
    """A confident model: word A four times, then EOS (each at probability ~0.99); a beam that ever takes the
    unlikely word B ends next with near certainty. So every step, a poor beam's EOS extension ranks in the top K."""

    A, B, LENGTH = 3, 4, 4

    def init_state(self, memory, memory_mask):
        return ScriptedState(0, torch.zeros(memory.size(0), dtype=torch.bool))

    def precompute(self, memory):
        return ScriptedKeys()

    def step(self, token, state, memory, memory_mask, precomputed):
        deviated = state.deviated | (token == self.B)                              # [R]
        steps = state.steps + 1
        logits = torch.full((token.numel(), 5), -20.0)                             # [R, V]
        logits[:, self.B], logits[:, EOS] = -5.0, -6.0
        logits[:, EOS if steps > self.LENGTH else self.A] = 0.0
        logits[deviated] = torch.tensor([-20.0, -20.0, 0.0, -9.0, -9.0])          # after B: EOS
        attention = torch.full((token.numel(), memory.size(1)), 1.0 / memory.size(1))  # [R, N]
        return logits, attention, ScriptedState(steps, deviated)


@pytest.mark.parametrize("beam_size", [2, 3])
def test_poor_beams_that_end_early_do_not_stop_the_search_before_the_best_path_ends(beam_size):
    """Stopping at beam_size finished hypotheses (fairseq's rule) returns a poor early ending here; the search
    must go on until its best extension ends, and return what greedy decoding finds."""
    memory, _ = memory_batch()
    decoder = ScriptedDecoder()
    greedy = greedy_decode(decoder, memory, None, BOS, EOS, max_len=MAX_LEN)
    beam = beam_search(decoder, memory, None, BOS, EOS, beam_size=beam_size, max_len=MAX_LEN)
    for g, b in zip(greedy, beam, strict=True):
        assert g.tokens == [ScriptedDecoder.A] * ScriptedDecoder.LENGTH and g.finished
        assert b.tokens == g.tokens and b.finished
        assert b.score == pytest.approx(g.score, abs=1e-5)


# The named steps of beam_search, one at a time on hand-made states (A searching samples, 2 beams each, N = 2).

class RowState:
    """A decoder state (or precomputed keys) that is just its rows: select reorders them."""

    def __init__(self, rows: torch.Tensor) -> None:
        self.rows = rows                                                           # [R]

    def select(self, index: torch.Tensor) -> "RowState":
        return RowState(self.rows.index_select(0, index))


def hand_made_search(active: list[int], beams: int = 2, words: int = 2) -> _Search:
    """A search over samples ``active`` with ``words`` words so far: beam row r holds words 10r, 10r + 1, ...,
    attention rows r / 100 + the word position, state and keys the row ids."""
    rows, samples = len(active) * beams, len(active)
    history = 10 * torch.arange(rows).unsqueeze(1) + torch.arange(words)           # [A*beams, t]
    attention = (torch.arange(rows).view(-1, 1, 1) / 100 + torch.arange(words).view(1, -1, 1)).expand(-1, -1, 2)
    return _Search(active=torch.tensor(active), beams=beams, tokens=history[:, -1].clone(),
                   scores=-torch.arange(rows, dtype=torch.float).view(samples, beams), history=history,
                   attention=attention.clone(), state=RowState(torch.arange(rows)),
                   memory=torch.arange(samples, dtype=torch.float).view(-1, 1, 1).expand(-1, 2, 3).clone(),
                   memory_mask=torch.ones(samples, 2, dtype=torch.bool), precomputed=RowState(torch.arange(samples)))


def test_rank_candidates_are_the_best_extensions_of_each_sample_over_all_its_beams():
    search = hand_made_search([0, 1])                                              # beam scores [[0, -1], [-2, -3]]
    logits = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))         # [A*beams, V]
    candidates = _rank_candidates(search, logits, k=2, eos_id=EOS)
    log_probs = torch.log_softmax(logits, -1)
    for a in range(2):   # every extension of sample a, sorted: the first 2K are the candidates
        extensions = sorted(((search.scores[a, j] + log_probs[2 * a + j, w]).item(), 2 * a + j, w)
                            for j in range(2) for w in range(5))[::-1][:4]
        assert candidates.source[a].tolist() == [row for _, row, _ in extensions]
        assert candidates.tokens[a].tolist() == [w for _, _, w in extensions]
        assert candidates.scores[a].tolist() == pytest.approx([s for s, _, _ in extensions], abs=1e-6)
        assert candidates.ends[a].tolist() == [w == EOS for _, _, w in extensions]


def candidates_of(rows: list[list[tuple[float, int, int]]], vocab: int = 5) -> _Candidates:
    """Hand-made candidates: per sample, (score, word, source row) best first."""
    scores, tokens, source = (torch.tensor([[c[i] for c in row] for row in rows]) for i in range(3))
    return _Candidates(scores.float(), tokens, source, tokens == EOS, vocab)


def test_record_finished_keeps_eos_extensions_within_the_first_k_that_beat_the_best_so_far():
    search = hand_made_search([0, 2])                                              # sample 1 has left
    best = _Best.empty(3, 4, 2, torch.device("cpu"))
    step = 3
    candidates = candidates_of([[(-1.0, 5, 1), (-1.5, EOS, 0), (-2.0, EOS, 1), (-3.0, 6, 0)],   # EOS at rank 1: kept
                                [(-1.0, 5, 2), (-1.5, 6, 3), (-2.0, EOS, 3), (-3.0, 6, 2)]])   # rank 2 > K: not
    _record_finished(best, search, candidates, 2, step, 1.0)
    assert best.score[0].item() == pytest.approx(-1.5 / length_penalty_factor(step, 1.0))
    assert best.log_prob.tolist() == [-1.5, float("-inf"), float("-inf")]
    assert best.length[0].item() == step - 1 and best.tokens[0, :2].tolist() == search.history[0].tolist()
    assert torch.equal(best.attention[0, :2], search.attention[0])
    # a worse ending later does not replace it; one that beats it does
    _record_finished(best, search, candidates_of([[(-9.0, EOS, 1)] * 4, [(-9.0, 5, 2)] * 4]), 2, step, 0.0)
    assert best.log_prob[0].item() == -1.5
    _record_finished(best, search, candidates_of([[(-0.5, EOS, 1)] * 4, [(-9.0, 5, 2)] * 4]), 2, step, 0.0)
    assert best.log_prob[0].item() == -0.5 and best.tokens[0, :2].tolist() == search.history[1].tolist()


def test_next_beams_are_the_k_best_extensions_that_do_not_end():
    candidates = candidates_of([[(-1.0, EOS, 0), (-1.5, 5, 1), (-2.0, EOS, 1), (-3.0, 6, 0)],
                                [(-1.0, 5, 2), (-1.5, 6, 3), (-2.0, 7, 3), (-3.0, EOS, 2)]])
    beams = _next_beams(candidates, 2, beams=2)
    assert beams.scores.tolist() == [[-1.5, -3.0], [-1.0, -1.5]]
    assert beams.tokens.tolist() == [[5, 6], [5, 6]] and beams.source.tolist() == [[1, 0], [2, 3]]
    # a tiny vocabulary (one word and EOS) from one beam: a single next beam, however large K
    tiny = candidates_of([[(-0.1, 0, 0), (-2.0, EOS, 0)]], vocab=2)
    assert _next_beams(tiny, 5, beams=1).tokens.tolist() == [[0]]


def test_record_unfinished_at_limit_returns_the_best_beam_of_expired_samples_with_no_ending():
    search = hand_made_search([0, 1, 2])
    best = _Best.empty(3, 5, 2, torch.device("cpu"))
    best.score[1], best.log_prob[1] = -0.5, -0.75                                  # sample 1 has finished
    beams = _Beams(torch.tensor([[-1.0, -2.0], [-1.0, -2.0], [-1.0, -2.0]]), torch.tensor([[7, 8]] * 3),
                   torch.tensor([[1, 0], [3, 2], [5, 4]]))
    weights = torch.arange(12, dtype=torch.float).view(6, 2)                       # [A*beams, N]
    step = 3
    _record_unfinished_at_limit(best, search, beams, weights, torch.tensor([True, True, False]), step, 1.0)
    assert best.unfinished.tolist() == [True, False, False]                        # 2 is not at its limit
    assert best.log_prob.tolist() == [-1.0, -0.75, float("-inf")]
    assert best.score[0].item() == pytest.approx(-1.0 / length_penalty_factor(step, 1.0))
    assert best.length[0].item() == step and best.tokens[0, :step].tolist() == [*search.history[1].tolist(), 7]
    assert torch.equal(best.attention[0, :step], torch.cat([search.attention[1], weights[1:2]]))


def test_drop_stopped_rows_removes_the_samples_that_stop_from_the_batch():
    search = hand_made_search([0, 1, 2])
    beams = _Beams(torch.tensor([[-1.0, -2.0], [-3.0, -4.0], [-5.0, -6.0]]), torch.tensor([[7, 8]] * 3),
                   torch.tensor([[1, 0], [3, 2], [5, 4]]))
    assert _drop_stopped_rows(search, beams, torch.tensor([False, False, False])) is beams
    assert search.active.tolist() == [0, 1, 2] and search.memory.size(0) == 3
    kept = _drop_stopped_rows(search, beams, torch.tensor([False, True, False]))
    assert search.active.tolist() == [0, 2] and search.precomputed.rows.tolist() == [0, 2]
    assert search.memory[:, 0, 0].tolist() == [0.0, 2.0] and search.memory_mask.shape == (2, 2)
    assert kept.scores.tolist() == [[-1.0, -2.0], [-5.0, -6.0]] and kept.source.tolist() == [[1, 0], [5, 4]]


def test_advance_moves_history_attention_and_state_to_the_next_beams():
    search = hand_made_search([0, 2])
    beams = _Beams(torch.tensor([[-1.0, -2.0], [-3.0, -4.0]]), torch.tensor([[7, 8], [9, 10]]),
                   torch.tensor([[1, 1], [3, 2]]))
    weights = torch.arange(8, dtype=torch.float).view(4, 2)                        # [A*beams, N]
    history, attention = search.history, search.attention
    _advance(search, beams, weights)
    assert search.history.tolist() == [[*history[1].tolist(), 7], [*history[1].tolist(), 8],
                                       [*history[3].tolist(), 9], [*history[2].tolist(), 10]]
    assert torch.equal(search.attention, torch.cat([attention, weights.unsqueeze(1)], 1)[[1, 1, 3, 2]])
    assert search.state.rows.tolist() == [1, 1, 3, 2] and search.tokens.tolist() == [7, 8, 9, 10]
    assert search.scores is beams.scores and search.beams == 2
