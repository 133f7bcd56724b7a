"""Attention kinds: shapes, masking, precomputed keys, gradients, NaN safety, bf16; hard attention and REINFORCE."""

import pytest
import torch

from modules.attention import (
    AdditiveAttention,
    DotAttention,
    GeneralAttention,
    HardAttention,
    MultiplicativeAttention,
    build_attention,
    masked_softmax,
)

KINDS = ["additive", "dot", "general", "multiplicative"]
B, N, DQ, DK, HIDDEN = 4, 5, 6, 6, 7


def make(kind: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_attention(kind, DQ, DK if kind == "dot" else DK + 1, HIDDEN)


def inputs(kind: str, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    key_dim = DK if kind == "dot" else DK + 1
    query = torch.randn(B, DQ, generator=generator)                     # [B, Dq]
    keys = torch.randn(B, N, key_dim, generator=generator)              # [B, N, Dk]
    mask = torch.ones(B, N, dtype=torch.bool)                           # [B, N]
    mask[1, 3:] = False
    mask[2, 1:] = False
    return query, keys, mask


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_weights_sum_to_one_over_real_keys(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    context, weights = attention(query, keys, mask)
    assert context.shape == (B, keys.size(-1)) and weights.shape == (B, N)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))
    assert (weights[mask] > 0).all()
    torch.testing.assert_close(context, torch.einsum("bn,bnd->bd", weights, keys))  # values = keys
    assert torch.equal(weights[2], torch.tensor([1.0, 0, 0, 0, 0]))


@pytest.mark.parametrize("kind", KINDS)
def test_masked_keys_get_exactly_zero_weight_and_do_not_matter(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    context, weights = attention(query, keys, mask)
    assert (weights[~mask] == 0).all()
    changed = keys.masked_fill(~mask.unsqueeze(-1), 1e4)  # padding content must not leak in
    context2, weights2 = attention(query, changed, mask)
    torch.testing.assert_close(weights2, weights)
    torch.testing.assert_close(context2, context)


@pytest.mark.parametrize("kind", KINDS)
def test_precomputed_keys_give_identical_results(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    precomputed = attention.precompute(keys)
    for step_query in (query, query.flip(0)):  # the same keys serve several steps
        context, weights = attention(step_query, keys, mask)
        context_pre, weights_pre = attention(step_query, keys, mask, precomputed=precomputed)
        assert torch.equal(context, context_pre) and torch.equal(weights, weights_pre)
    with pytest.raises(ValueError, match="precompute"):
        attention(query[:2], keys[:2, :3], mask[:2, :3], precomputed=precomputed)


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_every_parameter_and_the_inputs(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    query.requires_grad_(True)
    keys.requires_grad_(True)
    context, weights = attention(query, keys, mask)
    (context.square().sum() + (weights * torch.arange(N)).sum()).backward()
    for name, parameter in attention.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert torch.isfinite(parameter.grad).all(), name
    assert query.grad.abs().sum() > 0 and keys.grad.abs().sum() > 0
    assert (keys.grad[~mask] == 0).all()  # padding gets no gradient either
    expected = {"additive": 4, "dot": 0, "general": 1, "multiplicative": 5}[kind]
    assert len(list(attention.parameters())) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_all_masked_row_gives_zeros_not_nan(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    mask[3] = False
    keys.requires_grad_(True)
    context, weights = attention(query, keys, mask)
    assert torch.isfinite(context).all() and torch.isfinite(weights).all()
    assert (weights[3] == 0).all() and (context[3] == 0).all()
    torch.testing.assert_close(weights[:3].sum(-1), torch.ones(3))
    context.sum().backward()
    assert torch.isfinite(keys.grad).all()
    for name, parameter in attention.named_parameters():
        assert torch.isfinite(parameter.grad).all(), name


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_autocast(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        precomputed = attention.precompute(keys)
        context, weights = attention(query, keys, mask, precomputed=precomputed)
    assert weights.dtype == torch.float32
    assert torch.isfinite(context.float()).all()
    assert (weights[~mask] == 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(B), atol=1e-3, rtol=0)
    _, reference = attention(query, keys, mask)
    torch.testing.assert_close(weights, reference, atol=5e-2, rtol=0)


def test_factory_aliases_and_errors():
    assert isinstance(build_attention("bahdanau", 4, 5, 3), AdditiveAttention)
    assert isinstance(build_attention("Additive", 4, 5, 3), AdditiveAttention)
    assert isinstance(build_attention("luong_dot", 4, 4, 3), DotAttention)
    assert isinstance(build_attention("luong_general", 4, 5, 3), GeneralAttention)
    assert isinstance(build_attention("mlb", 4, 5, 3), MultiplicativeAttention)
    with pytest.raises(ValueError) as error:
        build_attention("cosine", 4, 4, 3)
    for choice in ("additive", "bahdanau", "dot", "luong_dot", "general", "luong_general", "multiplicative"):
        assert choice in str(error.value)
    with pytest.raises(ValueError, match="query_dim == key_dim"):
        build_attention("dot", 4, 5, 3)
    with pytest.raises(TypeError, match="bool"):
        masked_softmax(torch.zeros(2, 3), torch.ones(2, 3))


# --- hard attention ---------------------------------------------------------------------------------------

def make_hard(**kwargs) -> HardAttention:
    torch.manual_seed(0)
    return HardAttention(AdditiveAttention(DQ, DK + 1, HIDDEN), **kwargs)


def test_hard_training_context_is_the_sampled_key():
    hard = make_hard(mix_soft_prob=0.0).train()
    query, keys, mask = inputs("additive")
    query, keys, mask = query.repeat(8, 1), keys.repeat(8, 1, 1), mask.repeat(8, 1)  # 32 rows, many draws
    out = hard(query, keys, mask)
    rows = torch.arange(query.size(0))
    assert torch.equal(out.context, keys[rows, out.sample])
    assert mask[rows, out.sample].all()  # never a padded position
    assert out.stochastic.all()
    torch.testing.assert_close(out.log_prob, out.weights[rows, out.sample].log())
    assert out.sample.unique().numel() > 1  # it samples, not argmax
    assert (out.entropy[2::B] == 0).all() and (out.entropy[0::B] > 0).all()  # row 2 has a single real key
    context, weights = out[:2]
    assert context is out.context and weights is out.weights


def test_hard_eval_gives_expectation_or_argmax():
    query, keys, mask = inputs("additive")
    hard = make_hard(mix_soft_prob=0.0).eval()
    soft_context, soft_weights = hard.inner(query, keys, mask)
    out = hard(query, keys, mask)
    assert torch.equal(out.context, soft_context) and torch.equal(out.weights, soft_weights)
    assert (out.log_prob == 0).all() and not out.stochastic.any()
    hard_argmax = make_hard(eval_mode="argmax").eval()
    out = hard_argmax(query, keys, mask)
    assert torch.equal(out.context, keys[torch.arange(B), soft_weights.argmax(-1)])
    with pytest.raises(ValueError, match="expectation, argmax"):
        make_hard(eval_mode="mode")


def test_hard_mixes_soft_expectation_on_some_rows():
    query, keys, mask = inputs("additive")
    query, keys, mask = query.repeat(25, 1), keys.repeat(25, 1, 1), mask.repeat(25, 1)  # 100 rows
    hard = make_hard(mix_soft_prob=0.5).train()
    out = hard(query, keys, mask)
    soft_context, _ = hard.inner(query, keys, mask)
    rows = torch.arange(query.size(0))
    assert 10 < int(out.stochastic.sum()) < 90
    assert torch.equal(out.context[out.stochastic], keys[rows, out.sample][out.stochastic])
    assert torch.equal(out.context[~out.stochastic], soft_context[~out.stochastic])
    assert (out.log_prob[~out.stochastic] == 0).all() and (out.log_prob[out.stochastic] <= 0).all()


def test_hard_all_masked_row_is_safe():
    query, keys, mask = inputs("additive")
    mask[3] = False
    out = make_hard(mix_soft_prob=0.0).train()(query, keys, mask)
    assert (out.context[3] == 0).all() and out.log_prob[3] == 0 and out.entropy[3] == 0
    assert not out.stochastic[3] and torch.isfinite(out.log_prob).all()


def test_reinforce_surrogate_gives_gradient_to_inner_attention():
    hard = make_hard(mix_soft_prob=0.0).train()
    query, keys, mask = inputs("additive")
    out = hard(query, keys, mask)
    advantage = torch.tensor([1.0, -0.5, 2.0, 0.3])  # reward - baseline, a constant to the gradient
    surrogate = (out.log_prob * advantage).sum()
    surrogate.backward()
    for name, parameter in hard.inner.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    hard.zero_grad()
    hard(query, keys, mask).entropy.sum().backward()  # the entropy bonus reaches them too
    assert all(p.grad.abs().sum() > 0 for p in hard.inner.parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_several_queries_per_key_set_equal_each_query_alone(kind):
    """query [B, Q, Dq] over keys [B, N, Dk] (the beams of a sample in beam search): keys stored once per sample,
    each query's context and weights as if it were alone with its own copy of the keys."""
    attention = make(kind)
    _, keys, mask = inputs(kind)
    queries = torch.randn(B, 3, DQ, generator=torch.Generator().manual_seed(5))     # [B, Q, Dq]
    context, weights = attention(queries, keys, mask)
    assert context.shape == (B, 3, keys.size(-1)) and weights.shape == (B, 3, N)
    assert (weights[~mask.unsqueeze(1).expand(-1, 3, -1)] == 0).all()
    for q in range(3):
        alone_context, alone_weights = attention(queries[:, q], keys, mask)
        torch.testing.assert_close(context[:, q], alone_context)
        torch.testing.assert_close(weights[:, q], alone_weights)


@pytest.mark.parametrize("eval_mode", ["expectation", "argmax"])
def test_hard_attention_with_several_queries_per_key_set(eval_mode):
    hard = HardAttention(make("additive"), eval_mode).eval()
    _, keys, mask = inputs("additive")
    queries = torch.randn(B, 3, DQ, generator=torch.Generator().manual_seed(5))     # [B, Q, Dq]
    out = hard(queries, keys, mask)
    assert out.context.shape == (B, 3, keys.size(-1)) and out.entropy.shape == (B, 3)
    for q in range(3):
        alone = hard(queries[:, q], keys, mask)
        for name in ("context", "weights", "entropy", "sample"):
            torch.testing.assert_close(getattr(out, name)[:, q], getattr(alone, name))
    hard.train()
    torch.manual_seed(0)
    out = hard(queries, keys, mask)
    picked = keys.gather(1, out.sample.unsqueeze(-1).expand(-1, -1, keys.size(-1)))  # [B, Q, Dk]
    stochastic = out.stochastic.unsqueeze(-1)
    assert out.stochastic.any()   # with mix 0.5 over 12 rows, some rows use their sample
    torch.testing.assert_close(torch.where(stochastic, out.context, picked), picked)


@pytest.mark.parametrize("kind", KINDS)
def test_a_mask_of_the_wrong_shape_is_named(kind):
    attention = make(kind)
    query, keys, mask = inputs(kind)
    with pytest.raises(ValueError, match=r"mask has shape \(4, 4\), expected \(4, 5\)"):
        attention(query, keys, mask[:, :4])
    with pytest.raises(ValueError, match="mask has shape"):
        attention(query.unsqueeze(1), keys, mask.unsqueeze(1))
