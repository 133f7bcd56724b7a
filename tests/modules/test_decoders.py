"""Attention LSTM decoder: shapes, masked memory, step == forward, gradients, overfitting, doubly stochastic term."""

import pytest
import torch
import torch.nn.functional as F

from modules.decoders import AttentionLSTMDecoder, DecoderState, doubly_stochastic_penalty

V, E, H, D, N, B, T = 11, 8, 12, 6, 5, 3, 4


CONFIGS = {
    "show_attend_tell": {},
    "luong": dict(attention="general", attention_query="current", input_feeding=True, deep_output=False,
                  gate=False, init_from_memory=False),
    "bahdanau_feeding": dict(attention="bahdanau", input_feeding=True, attention_dim=5),
    "dot": dict(attention="dot", hidden_dim=D),
    "hard": dict(hard=True),
}


def make_decoder(config: str = "show_attend_tell", dropout: float = 0.0, seed: int = 0) -> AttentionLSTMDecoder:
    torch.manual_seed(seed)
    kwargs = {"hidden_dim": H, **CONFIGS[config]}
    return AttentionLSTMDecoder(V, E, memory_dim=D, dropout=dropout, **kwargs)


def batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    memory = torch.randn(B, N, D, generator=generator)                    # [B, N, D]
    mask = torch.ones(B, N, dtype=torch.bool)                             # [B, N]
    mask[1, 3:] = False
    tokens = torch.randint(0, V, (B, T), generator=generator)             # [B, T], BOS first by convention
    return memory, mask, tokens


@pytest.mark.parametrize("config", CONFIGS)
def test_shapes_and_attention_rows(config):
    decoder = make_decoder(config).eval()
    memory, mask, tokens = batch()
    out = decoder(memory, mask, tokens)
    assert out.logits.shape == (B, T, V) and out.attention.shape == (B, T, N)
    assert torch.isfinite(out.logits).all()
    torch.testing.assert_close(out.attention.sum(-1), torch.ones(B, T))
    assert (out.attention[1, :, 3:] == 0).all()
    if config == "hard":
        assert out.log_probs.shape == (B, T) and out.entropy.shape == (B, T)
    else:
        assert out.log_probs is None and out.entropy is None


def test_padded_memory_does_not_change_outputs():
    decoder = make_decoder().eval()
    memory, mask, tokens = batch()
    out = decoder(memory, mask, tokens)
    changed = memory.masked_fill(~mask.unsqueeze(-1), 100.0)   # padding content, incl. the initial mean
    torch.testing.assert_close(decoder(changed, mask, tokens).logits, out.logits)
    alone = decoder(memory[1:2, :3], None, tokens[1:2])        # the same sample without padding
    torch.testing.assert_close(alone.logits, out.logits[1:2], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config", CONFIGS)
def test_step_by_step_reproduces_forward(config):
    decoder = make_decoder(config, dropout=0.5).eval()
    memory, mask, tokens = batch()
    expected = decoder(memory, mask, tokens)
    state = decoder.init_state(memory, mask)
    assert isinstance(state, DecoderState)
    precomputed = decoder.precompute(memory)
    for t in range(T):
        logits, weights, state = decoder.step(tokens[:, t], state, memory, mask, precomputed)
        torch.testing.assert_close(logits, expected.logits[:, t], atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(weights, expected.attention[:, t], atol=1e-6, rtol=1e-5)


def test_logits_depend_only_on_earlier_tokens():
    decoder = make_decoder().eval()
    memory, mask, tokens = batch()
    changed = tokens.clone()
    changed[:, 2] = (changed[:, 2] + 1) % V
    a, b = decoder(memory, mask, tokens).logits, decoder(memory, mask, changed).logits
    torch.testing.assert_close(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


@pytest.mark.parametrize("config", CONFIGS)
def test_every_parameter_gets_a_gradient(config):
    decoder = make_decoder(config, dropout=0.5).train()
    memory, mask, tokens = batch()
    memory.requires_grad_(True)
    out = decoder(memory, mask, tokens)
    loss = F.cross_entropy(out.logits.reshape(-1, V), tokens.roll(-1, 1).reshape(-1))
    loss = loss + doubly_stochastic_penalty(out.attention, None, 1.0, mask)
    if out.log_probs is not None:
        loss = loss - (out.log_probs * 0.5).sum() - 0.01 * out.entropy.sum()  # REINFORCE + entropy bonus
    loss.backward()
    for name, parameter in decoder.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert torch.isfinite(parameter.grad).all(), name
    assert memory.grad.abs().sum() > 0 and (memory.grad[1, 3:] == 0).all()


@pytest.mark.parametrize("config", ["show_attend_tell", "luong", "hard"])
def test_overfits_a_tiny_batch(config):
    torch.manual_seed(0)
    decoder = make_decoder(config)
    memory = torch.randn(4, N, D)                                         # [4, N, D]
    sequences = torch.randint(3, V, (4, 7))                               # [4, 7]
    sequences[:, 0] = 1                                                   # BOS
    sequences[:, -1] = 2                                                  # EOS
    inputs, targets = sequences[:, :-1], sequences[:, 1:]
    optimizer = torch.optim.Adam(decoder.parameters(), lr=3e-2)
    for _ in range(150):
        optimizer.zero_grad()
        logits = decoder(memory, None, inputs).logits
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        loss.backward()
        optimizer.step()
        if loss.item() < 0.05:
            break
    assert loss.item() < 0.1


def test_doubly_stochastic_penalty():
    # Every position gets total attention 1 over time -> 0.
    permutation = torch.eye(N)[torch.randperm(N)]                         # [T=N, N]
    uniform = torch.full((N, N), 1.0 / N)                                 # [T=N, N]
    attention = torch.stack([permutation, uniform])                       # [2, N, N]
    assert doubly_stochastic_penalty(attention, None, alpha_c=1.0) == 0
    # A padded step's attention is not counted.
    padded = torch.cat([attention, torch.softmax(torch.randn(2, 1, N), -1)], dim=1)   # [2, N + 1, N]
    token_mask = torch.ones(2, N + 1, dtype=torch.bool)
    token_mask[:, -1] = False
    assert doubly_stochastic_penalty(padded, token_mask, alpha_c=1.0) == 0
    assert doubly_stochastic_penalty(padded, None, alpha_c=1.0) > 0
    # Attending to one position all the time: sum_n (1 - sum_t)^2 = (1 - T)^2 + (N - 1), times alpha_c.
    focused = torch.zeros(1, 3, N)
    focused[..., 0] = 1.0
    value = doubly_stochastic_penalty(focused, None, alpha_c=0.5)
    torch.testing.assert_close(value, torch.tensor(0.5 * ((1 - 3) ** 2 + (N - 1))))
    # Padded memory positions are left out when memory_mask is given.
    memory_mask = torch.ones(1, N, dtype=torch.bool)
    memory_mask[0, 2:] = False
    focused_mask = torch.zeros(1, 2, N)
    focused_mask[0, 0, 0] = focused_mask[0, 1, 1] = 1.0
    assert doubly_stochastic_penalty(focused_mask, None, 1.0, memory_mask) == 0
    assert doubly_stochastic_penalty(focused_mask, None, 1.0) == N - 2


def test_hard_decoder_log_probs_and_entropy():
    decoder = make_decoder("hard").train()
    decoder.attention.mix_soft_prob = 0.0
    memory, mask, tokens = batch()
    out = decoder(memory, mask, tokens)
    assert (out.log_probs < 0).any() and (out.log_probs <= 0).all()
    assert (out.entropy > 0).all() and torch.isfinite(out.entropy).all()
    assert ((out.attention > 0) == (out.attention > 0) & mask.unsqueeze(1)).all()
    eval_out = decoder.eval()(memory, mask, tokens)
    assert (eval_out.log_probs == 0).all()


def test_bad_options_name_the_choices():
    with pytest.raises(ValueError, match="previous, current"):
        AttentionLSTMDecoder(V, E, H, D, attention_query="before")
    with pytest.raises(ValueError, match="luong_general"):
        AttentionLSTMDecoder(V, E, H, D, attention="soft")
    with pytest.raises(ValueError, match="query_dim == key_dim"):
        AttentionLSTMDecoder(V, E, H, D, attention="dot")


@pytest.mark.parametrize("config", CONFIGS)
def test_step_with_k_rows_per_memory_equals_repeated_memory(config):
    """Beam search keeps one memory per sample and K state rows for it: the same as repeating the memory."""
    decoder = make_decoder(config).eval()
    memory, mask, tokens = batch()
    k = 3
    rows = torch.arange(B).repeat_interleave(k)                                       # [B*K]
    state = decoder.init_state(memory, mask).select(rows)
    generator = torch.Generator().manual_seed(2)
    state.h = state.h + 0.1 * torch.randn(state.h.shape, generator=generator)   # beams that differ
    token = torch.randint(0, V, (B * k,), generator=generator)
    logits, weights, _ = decoder.step(token, state, memory, mask, decoder.precompute(memory))
    repeated_memory, repeated_mask = memory[rows], mask[rows]
    expected_logits, expected_weights, _ = decoder.step(token, state, repeated_memory, repeated_mask,
                                                        decoder.precompute(repeated_memory))
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(weights, expected_weights)
    with pytest.raises(ValueError, match="K per memory"):
        decoder.step(token[:-1], state.select(torch.arange(B * k - 1)), memory, mask, decoder.precompute(memory))
