"""An LSTM decoder that attends over any memory [B, N, D]: image grid, frame sequence or source sentence.

Show, Attend and Tell (Xu et al. 2015) by default: the query is the previous hidden state h_{t-1}, the
gated context z_t = beta_t * sum_n alpha_tn m_n (beta_t = sigmoid(f_beta(h_{t-1}))) is fed to the LSTM with
the previous word, the initial state comes from the mean memory, and the output is "deep":

    o_t = tanh(E y_{t-1} + L_h h_t + L_z z_t)        (eq. 7 with the tanh of the authors' code)
    logits_t = L_o(dropout(o_t))

Bahdanau et al. (2015) is the same shape of model. Luong et al. (2015) attends with the current state
(``attention_query="current"``: h_t = LSTM(E y_{t-1}, h_{t-1}), then z_t = attend(h_t)), and with
``deep_output=False`` the output vector is Luong's attentional vector o_t = tanh(L_h h_t + L_z z_t)
(= tanh(W_c [z_t; h_t])). ``input_feeding`` feeds o_{t-1} to the LSTM with the previous word.

Teacher forcing convention: ``forward(memory, mask, tokens)`` takes the INPUT tokens [B, T], which start
with BOS (tokens = sequence[:, :-1] for a sequence "BOS w1 .. wn EOS PAD .."), and returns logits [B, T, V]
for the NEXT tokens (targets = sequence[:, 1:]); logits[:, t] depends on tokens[:, :t+1] only. Steps
whose target is padding are still computed; the loss masks them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from modules.attention import HardAttention, PrecomputedKeys, build_attention


@dataclass
class DecoderState:
    """The recurrent state between steps; ``select`` reorders it (beam search)."""

    h: Tensor              # [B, H]
    c: Tensor              # [B, H]
    feed: Tensor | None    # [B, E] the previous output vector o_{t-1} (input feeding), else None

    def select(self, index: Tensor) -> DecoderState:
        """Rows index [B'] of the state -> a state of batch B'."""
        feed = None if self.feed is None else self.feed.index_select(0, index)
        return DecoderState(self.h.index_select(0, index), self.c.index_select(0, index), feed)


@dataclass
class DecoderOutput:
    """Teacher-forced outputs for input tokens [B, T] over a memory of N positions."""

    logits: Tensor                   # [B, T, V] scores for the next token at each step
    attention: Tensor                # [B, T, N] attention weights (0 on masked memory positions)
    log_probs: Tensor | None = None  # [B, T] hard attention: log p(sampled location) (0 where the soft
                                     #   expectation was used, and in eval); None for soft attention
    entropy: Tensor | None = None    # [B, T] hard attention: entropy of each step's attention


@dataclass
class StepOutput:
    logits: Tensor                   # [B, V]
    weights: Tensor                  # [B, N]
    state: DecoderState
    log_prob: Tensor | None          # [B] (hard attention only)
    entropy: Tensor | None           # [B] (hard attention only)


class AttentionLSTMDecoder(nn.Module):
    """LSTMCell decoder with attention at every step; see the module docstring for the equations."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_dim: int, memory_dim: int,
                 attention: str = "additive", attention_dim: int | None = None, dropout: float = 0.5,
                 gate: bool = True, deep_output: bool = True, init_from_memory: bool = True,
                 input_feeding: bool = False, hard: bool = False, attention_query: str = "previous",
                 hard_eval_mode: str = "expectation", mix_soft_prob: float = 0.5) -> None:
        """
        Args:
            vocab_size: V, output vocabulary size (also the input embedding's).
            embed_dim: E, word embedding size; also the size of the output vector o_t.
            hidden_dim: H, LSTM state size (the attention query size).
            memory_dim: D, size of each memory position (the attention key size).
            attention: kind, see ``modules.attention.build_attention`` (additive|bahdanau, dot|luong_dot,
                general|luong_general); dot needs hidden_dim == memory_dim.
            attention_dim: width of the additive attention MLP (default: hidden_dim).
            dropout: dropout on the output vector o_t before the vocabulary projection.
            gate: scale the context by beta_t = sigmoid(f_beta(query)), a scalar per step (Xu sec. 4.2.1).
            deep_output: add the previous word's embedding to the output vector (Xu eq. 7); otherwise
                o_t = tanh(L_h h_t + L_z z_t) (Luong's attentional vector).
            init_from_memory: h_0, c_0 = tanh(Linear(mean of the memory over real positions)); else zeros.
            input_feeding: feed o_{t-1} to the LSTM with the previous word (Luong sec. 3.3).
            hard: stochastic hard attention (``modules.attention.HardAttention``) around the chosen kind.
            attention_query: "previous" (attend with h_{t-1} before the LSTM step and feed the context to it:
                Xu, Bahdanau) or "current" (attend with h_t after the step: Luong).
            hard_eval_mode: hard attention outside training: "expectation" or "argmax".
            mix_soft_prob: hard attention in training: probability of using the soft expectation on a row.
        """
        super().__init__()
        if attention_query not in ("previous", "current"):
            raise ValueError(f"attention_query {attention_query!r}; valid choices: previous, current")
        self.vocab_size = vocab_size
        self.hidden_dim = hidden_dim
        self.attention_query = attention_query
        self.deep_output = deep_output
        self.input_feeding = input_feeding
        self.init_from_memory = init_from_memory
        self.hard = hard

        self.embedding = nn.Embedding(vocab_size, embed_dim)
        soft = build_attention(attention, hidden_dim, memory_dim, attention_dim or hidden_dim)
        self.attention = HardAttention(soft, hard_eval_mode, mix_soft_prob) if hard else soft
        self.gate = nn.Linear(hidden_dim, 1) if gate else None
        lstm_input = embed_dim + (memory_dim if attention_query == "previous" else 0)
        lstm_input += embed_dim if input_feeding else 0
        self.lstm = nn.LSTMCell(lstm_input, hidden_dim)
        if init_from_memory:
            self.init_h = nn.Linear(memory_dim, hidden_dim)
            self.init_c = nn.Linear(memory_dim, hidden_dim)
        self.out_h = nn.Linear(hidden_dim, embed_dim)                  # L_h
        self.out_z = nn.Linear(memory_dim, embed_dim, bias=False)      # L_z
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, vocab_size)             # L_o
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)

    # --- one step at a time (beam search drives these) -------------------------------------------------

    def init_state(self, memory: Tensor, memory_mask: Tensor | None) -> DecoderState:
        """memory [B, N, D], memory_mask [B, N] bool | None -> the state before the first token."""
        batch = memory.size(0)
        if self.init_from_memory:
            if memory_mask is None:
                mean = memory.mean(dim=1)                                                 # [B, D]
            else:
                real = memory_mask.unsqueeze(-1).to(memory.dtype)                         # [B, N, 1]
                mean = (memory * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)         # [B, D]
            h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))           # [B, H] each
        else:
            h = c = memory.new_zeros(batch, self.hidden_dim)
        feed = memory.new_zeros(batch, self.embedding.embedding_dim) if self.input_feeding else None
        return DecoderState(h, c, feed)

    def precompute(self, memory: Tensor) -> PrecomputedKeys:
        """memory [B, N, D] -> the attention's key projection, computed once per sequence."""
        return self.attention.precompute(memory)

    def step(self, token: Tensor, state: DecoderState, memory: Tensor, memory_mask: Tensor | None,
             precomputed: PrecomputedKeys | None = None) -> tuple[Tensor, Tensor, DecoderState]:
        """token [R] (the previous word) -> (logits [R, V] for the next word, attention [R, N], new state).

        R = B (one row per memory) or R = B * K: K rows per memory, adjacent (the K beams of a sample in beam
        search); each memory, its mask and its precomputed keys are then read once for its K rows, and every
        row's result equals what it gets with the memory repeated for it.
        """
        out = self._step(self.embedding(token), state, memory, memory_mask, precomputed)
        return out.logits, out.weights, out.state

    def _attend(self, query: Tensor, memory: Tensor, memory_mask: Tensor | None,
                precomputed: PrecomputedKeys | None) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        """query [R, H] (R = B * K: K rows per memory, see ``step``) -> (gated context [R, D], weights [R, N],
        log_prob [R] | None, entropy [R] | None)."""
        rows, batch = query.size(0), memory.size(0)
        if rows % batch:
            raise ValueError(f"decoder step: {rows} rows over {batch} memories; the rows must be K per memory")
        queries = query if rows == batch else query.view(batch, rows // batch, -1)       # [B, (K,) H]
        if self.hard:
            out = self.attention(queries, memory, memory_mask, precomputed)
            context, weights, log_prob, entropy = out.context, out.weights, out.log_prob, out.entropy
            log_prob, entropy = log_prob.reshape(rows), entropy.reshape(rows)            # [R]
        else:
            context, weights = self.attention(queries, memory, memory_mask, precomputed)  # [B, (K,) D], [B, (K,) N]
            log_prob = entropy = None
        context, weights = context.reshape(rows, -1), weights.reshape(rows, -1)        # [R, D], [R, N]
        if self.gate is not None:
            context = context * torch.sigmoid(self.gate(query))                          # [B, D]
        return context, weights, log_prob, entropy

    def _step(self, embedded: Tensor, state: DecoderState, memory: Tensor, memory_mask: Tensor | None,
              precomputed: PrecomputedKeys | None) -> StepOutput:
        """embedded [B, E] (the previous word) -> StepOutput."""
        inputs = [embedded]                                                               # [B, E]
        if self.attention_query == "previous":
            context, weights, log_prob, entropy = self._attend(state.h, memory, memory_mask, precomputed)
            inputs.append(context)                                                        # [B, D]
        if self.input_feeding:
            inputs.append(state.feed)                                                     # [B, E]
        h, c = self.lstm(torch.cat(inputs, dim=-1), (state.h, state.c))                   # [B, H] each
        if self.attention_query == "current":
            context, weights, log_prob, entropy = self._attend(h, memory, memory_mask, precomputed)
        output = self.out_h(h) + self.out_z(context)                                      # [B, E]
        if self.deep_output:
            output = output + embedded
        output = torch.tanh(output)                                                       # [B, E] o_t
        logits = self.classifier(self.dropout(output))                                    # [B, V]
        new_state = DecoderState(h, c, output if self.input_feeding else None)
        return StepOutput(logits, weights, new_state, log_prob, entropy)

    # --- teacher forcing --------------------------------------------------------------------------------

    def forward(self, memory: Tensor, memory_mask: Tensor | None, tokens: Tensor) -> DecoderOutput:
        """memory [B, N, D], memory_mask [B, N] bool | None, input tokens [B, T] (BOS first) -> DecoderOutput.

        logits[:, t] scores tokens[:, t + 1] (the target sequence is the input shifted left by one).
        """
        state = self.init_state(memory, memory_mask)
        precomputed = self.precompute(memory)                                             # once per sequence
        embedded = self.embedding(tokens)                                                 # [B, T, E]
        logits, weights, log_probs, entropies = [], [], [], []
        for t in range(tokens.size(1)):
            out = self._step(embedded[:, t], state, memory, memory_mask, precomputed)
            state = out.state
            logits.append(out.logits)
            weights.append(out.weights)
            if self.hard:
                log_probs.append(out.log_prob)
                entropies.append(out.entropy)
        return DecoderOutput(
            logits=torch.stack(logits, dim=1),                                            # [B, T, V]
            attention=torch.stack(weights, dim=1),                                        # [B, T, N]
            log_probs=torch.stack(log_probs, dim=1) if self.hard else None,               # [B, T]
            entropy=torch.stack(entropies, dim=1) if self.hard else None,                 # [B, T]
        )


def doubly_stochastic_penalty(attention: Tensor, token_mask: Tensor | None, alpha_c: float = 1.0,
                              memory_mask: Tensor | None = None) -> Tensor:
    """Xu et al. eq. 14: alpha_c * sum_n (1 - sum_t alpha_tn)^2, averaged over the batch -> scalar.

    Args:
        attention: [B, T, N] attention weights of each step.
        token_mask: [B, T] bool, True at real steps (steps whose target is not padding); None = all real.
        alpha_c: the penalty's weight.
        memory_mask: [B, N] bool, True at real memory positions; padded positions (which never get
            attention) are left out of the sum instead of each adding a constant 1. None = all real.
    """
    if token_mask is not None:
        attention = attention * token_mask.unsqueeze(-1).to(attention.dtype)             # [B, T, N]
    penalty = (1.0 - attention.sum(dim=1)).square()                                      # [B, N]
    if memory_mask is not None:
        penalty = penalty * memory_mask.to(penalty.dtype)
    return alpha_c * penalty.sum(dim=1).mean()
