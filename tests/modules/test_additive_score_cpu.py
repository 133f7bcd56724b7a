"""The CPU fast paths of the additive score (modules/additive_score_cpu.py): chunked, exponential and fused scores
equal the paper's tanh form, and the subclass is a drop-in AdditiveAttention (same parameters, same state_dict)."""

import pytest
import torch

import modules.additive_score_cpu as score_cpu
from modules.additive_score_cpu import CPUAdditiveAttention, ExpFormKeys
from modules.attention import AdditiveAttention, build_attention
from tests.modules.test_attention import DK, DQ, HIDDEN, B, N, inputs, make


def test_build_attention_gives_the_cpu_subclass_with_the_papers_parameters_and_scores():
    """Every additive alias builds CPUAdditiveAttention; its state_dict loads into AdditiveAttention and back, and off
    the fast paths (tanh form, one chunk) both give the same scores bit for bit."""
    for alias in ("additive", "bahdanau", "Additive"):
        assert type(build_attention(alias, DQ, DK + 1, HIDDEN)) is CPUAdditiveAttention
    fast = make("additive")
    plain = AdditiveAttention(DQ, DK + 1, HIDDEN)
    assert list(fast.state_dict()) == list(plain.state_dict()) == ["query_proj.weight", "key_proj.weight",
                                                                    "key_proj.bias", "v.weight"]
    plain.load_state_dict(fast.state_dict())
    CPUAdditiveAttention(DQ, DK + 1, HIDDEN).load_state_dict(plain.state_dict())
    query, keys, mask = inputs("additive")
    queries = torch.randn(B, 3, DQ, generator=torch.Generator().manual_seed(5))          # [B, 3, Dq]
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            for q in (query, queries):
                for a, b in zip(fast(q, keys, mask), plain(q, keys, mask), strict=True):
                    assert torch.equal(a, b)


def test_exp_form_keys_survive_select_and_the_score_falls_back_to_tanh_for_plain_keys(monkeypatch):
    """Beam search reorders precomputed keys with select: the exponential form's keys stay ExpFormKeys. Keys
    precomputed by the parent (U k + b) are scored with tanh even where the exponential form is on."""
    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (torch.backends.cpu.get_cpu_capability(),))
    attention = make("additive")
    query, keys, _ = inputs("additive")
    with torch.no_grad():
        precomputed = attention.precompute(keys)
        assert isinstance(precomputed, ExpFormKeys)
        index = torch.tensor([2, 0])
        selected = precomputed.select(index)
        assert isinstance(selected, ExpFormKeys)
        assert torch.equal(selected.projected, precomputed.projected[index])
        torch.testing.assert_close(attention.score(query[index].unsqueeze(1), selected),
                                   attention.score(query.unsqueeze(1), precomputed)[index])
        plain = AdditiveAttention.precompute(attention, keys)                            # U k + b
        assert type(plain) is not ExpFormKeys
        assert torch.equal(attention.score(query.unsqueeze(1), plain),
                           AdditiveAttention.score(attention, query.unsqueeze(1), plain))


def test_additive_scores_in_chunks_equal_one_pass_with_the_same_gradients(monkeypatch):
    """On the CPU the additive intermediate is built a few samples at a time: same scores, same gradients."""
    attention = make("additive")
    _, keys, mask = inputs("additive")
    queries = torch.randn(B, 3, DQ, generator=torch.Generator().manual_seed(5), requires_grad=True)

    def run() -> tuple[torch.Tensor, list[torch.Tensor]]:
        context, weights = attention(queries, keys, mask)
        (context.square().sum() + weights[:, :, 0].sum()).backward()
        grads = [queries.grad.clone(), *(p.grad.clone() for p in attention.parameters())]
        queries.grad = None
        attention.zero_grad()
        return weights.detach(), grads

    one_pass, one_pass_grads = run()
    chunked_sizes = []
    original = score_cpu.CPUAdditiveAttention._score
    monkeypatch.setattr(score_cpu, "CPU_SCORE_CHUNK", 3 * N * HIDDEN)   # 1 sample of 3 queries per chunk
    monkeypatch.setattr(score_cpu.CPUAdditiveAttention, "_score",
                        lambda self, k, q, *rest: chunked_sizes.append(k.size(0)) or original(self, k, q, *rest))
    chunked, chunked_grads = run()
    assert chunked_sizes == [1] * B
    torch.testing.assert_close(chunked, one_pass)
    for a, b in zip(chunked_grads, one_pass_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("exp_form", [True, False])
def test_additive_inference_scores_equal_the_tanh_form_and_training_keeps_tanh(monkeypatch, exp_form):
    """Without autograd, CPUs whose tanh is slow score with 2 v^T / (1 + exp(-2 (U k + b)) exp(-2 W q)) - sum(v):
    the same weights (to float rounding) as v^T tanh(x); with autograd the exact tanh graph is used on every CPU."""
    attention = make("additive")
    query, keys, mask = inputs("additive")
    capability = torch.backends.cpu.get_cpu_capability()
    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (capability,) if exp_form else ())
    assert score_cpu.exp_form_is_faster(keys.device) == exp_form
    projected, queries = attention.key_proj(keys), attention.query_proj(query).unsqueeze(1)    # [B, N, H], [B, 1, H]
    exact = attention.v(torch.tanh(projected.unsqueeze(1) + queries.unsqueeze(2))).squeeze(-1)  # [B, 1, N]
    with torch.no_grad():
        precomputed = attention.precompute(keys)              # the key factor is computed once here
        assert isinstance(precomputed, ExpFormKeys) == exp_form
        assert isinstance(precomputed.select(torch.tensor([0])), ExpFormKeys) == exp_form
        if exp_form:
            torch.testing.assert_close(precomputed.projected, torch.exp(-2 * projected))
        scores = attention.score(query.unsqueeze(1), precomputed)
        _, weights = attention(query, keys, mask)
    torch.testing.assert_close(scores, exact, atol=1e-5, rtol=1e-5)
    _, trained = attention(query, keys, mask)
    torch.testing.assert_close(weights, trained.detach(), atol=1e-6, rtol=1e-5)
    tanh_calls = []
    monkeypatch.setattr(torch.Tensor, "tanh_", lambda self: tanh_calls.append(1) or torch.tanh(self))
    attention(query, keys, mask)[0].sum().backward()          # autograd: the tanh form, whatever the CPU
    assert tanh_calls and all(p.grad is not None for p in attention.parameters())


def test_additive_exp_form_is_finite_for_saturating_queries_and_falls_back_for_large_keys(monkeypatch):
    """Queries whose factor exp(-2 W q) is 0 or inf still give tanh's scores (no inf * 0); keys beyond
    EXP_FORM_KEY_LIMIT are scored with tanh."""
    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (torch.backends.cpu.get_cpu_capability(),))
    attention = make("additive")
    query, keys, _ = inputs("additive")
    with torch.no_grad():
        attention.key_proj.weight.mul_(0.1)
        projected = attention.key_proj(keys)                                            # [B, N, H] well inside
        assert projected.abs().amax() < score_cpu.EXP_FORM_KEY_LIMIT / 4
        huge = query.unsqueeze(1) * 1e4                                                 # [B, 1, Dq]: |W q| >> 44
        queries = attention.query_proj(huge)                                            # [B, 1, H]
        assert (queries * -2).exp().isinf().any() and (queries * -2).exp().eq(0).any()
        exact = attention.v(torch.tanh(projected.unsqueeze(1) + queries.unsqueeze(2))).squeeze(-1)   # [B, 1, N]
        precomputed = attention.precompute(keys)
        assert isinstance(precomputed, ExpFormKeys)
        torch.testing.assert_close(attention.score(huge, precomputed), exact, atol=1e-5, rtol=1e-5)

        attention.key_proj.bias.fill_(2 * score_cpu.EXP_FORM_KEY_LIMIT)                    # |U k + b| > limit
        assert not isinstance(attention.precompute(keys), ExpFormKeys)


@pytest.mark.parametrize("exp_form", [True, False])
def test_fused_inference_scores_equal_the_eager_ones_and_training_stays_eager(monkeypatch, exp_form):
    """compile_decoding's fused score (torch.compile, dynamic shapes) gives the eager scores for several queries per
    key set and for one sample with one query; the tanh form and autograd stay eager."""
    capability = torch.backends.cpu.get_cpu_capability()
    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (capability,) if exp_form else ())
    attention = make("additive")
    query, keys, mask = inputs("additive")
    queries = torch.randn(B, 3, DQ, generator=torch.Generator().manual_seed(7))       # [B, 3, Dq]
    with torch.no_grad():
        eager = [attention(queries, keys, mask), attention(query[:1], keys[:1], mask[:1])]
        assert score_cpu.fuse_additive_scores(torch.nn.Sequential(attention, make("additive", 1))) == 2
        calls = []
        original = score_cpu.compiled_score
        monkeypatch.setattr(score_cpu, "compiled_score", lambda: calls.append(1) or original())
        fused = [attention(queries, keys, mask), attention(query[:1], keys[:1], mask[:1])]
    assert len(calls) == (2 if exp_form else 0) and attention.fused_inference
    for (context, weights), (fused_context, fused_weights) in zip(eager, fused, strict=True):
        torch.testing.assert_close(fused_weights, weights, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(fused_context, context, atol=1e-6, rtol=1e-5)
    attention(queries, keys, mask)[0].sum().backward()                                  # autograd: eager
    assert len(calls) == (2 if exp_form else 0) and all(p.grad is not None for p in attention.parameters())


def test_a_fused_score_that_cannot_compile_falls_back_to_eager_with_a_warning(monkeypatch, caplog):
    def no_compiler():
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found\nmore lines")
        return call

    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (torch.backends.cpu.get_cpu_capability(),))
    attention = make("additive")
    query, keys, mask = inputs("additive")
    with torch.no_grad():
        expected = attention(query, keys, mask)
        score_cpu.fuse_additive_scores(attention)
        monkeypatch.setattr(score_cpu, "compiled_score", no_compiler)
        with caplog.at_level("WARNING", logger="modules.additive_score_cpu"):
            context, weights = attention(query, keys, mask)
    assert "fused attention score unavailable, scoring eagerly instead: RuntimeError: InvalidCxxCompiler" in caplog.text
    assert "more lines" not in caplog.text and not attention.fused_inference
    torch.testing.assert_close(weights, expected[1])
    torch.testing.assert_close(context, expected[0])
