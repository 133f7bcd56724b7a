"""Stacked attention (Yang et al. 2016): the question queries the image grid k times, refining itself each hop.

    v_I = tanh(W v)                     image grid [B, N, d]
    u_0 = the question vector           [B, d]
    hop k: p_k = softmax(w_p^T tanh(W_I v_I + W_Q u_{k-1}))       (additive attention, its OWN weights per hop)
           u_k = sum_n p_kn v_In + u_{k-1}

Each hop is a separate attention instance (``modules.attention``: additive as in the paper, or multiplicative);
a common port bug reuses one module for every hop. With ``hops=0`` the model is the no-attention baseline:
u = mean_n v_In + u_0.

``readout="concat"`` returns [u_0; c_1; ...; c_k] (c_k = sum_n p_kn v_In) instead of their sum u_k, so the answer
classifier can read each hop's context apart (hops=0: [u_0; mean_n v_In]).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from modules.attention import build_attention

READOUTS = ("sum", "concat")


class StackedAttention(nn.Module):
    """k attention hops over an image grid, driven by a question vector."""

    def __init__(self, dim: int, hops: int, attention_dim: int, score: str = "additive", readout: str = "sum") -> None:
        """
        Args:
            dim: d, size of the projected image positions and of the question vector.
            hops: number of attention layers (0: mean pooling, the no-attention baseline).
            attention_dim: width of each hop's attention (k in the paper).
            score: "additive" (the paper's) or "multiplicative" (tanh(W_Q u) * tanh(W_I v); see
                modules.attention.MultiplicativeAttention).
            readout: "sum" (the paper's u_k) or "concat" ([u_0; c_1; ...; c_k], size d * (k + 1); see above).
        """
        super().__init__()
        if hops < 0:
            raise ValueError(f"model.hops must be >= 0, got {hops}")
        if score not in ("additive", "multiplicative"):
            raise ValueError(f"model.score={score!r}: choose additive or multiplicative")
        if readout not in READOUTS:
            raise ValueError(f"model.readout={readout!r}: choose one of {list(READOUTS)}")
        self.readout = readout
        self.hops = nn.ModuleList([build_attention(score, dim, dim, attention_dim) for _ in range(hops)])

    def out_dim(self, dim: int) -> int:
        """Size of what ``forward`` returns for positions and question of size d."""
        return dim * (max(len(self.hops), 1) + 1) if self.readout == "concat" else dim

    def forward(self, image: Tensor, question: Tensor) -> tuple[Tensor, list[Tensor]]:
        """image [B, N, d], question [B, d] -> (refined query u_k [B, d] (concat: [B, d * (k + 1)]), attention of
        every hop: k x [B, N])."""
        query = question                                                                  # [B, d]
        maps, contexts = [], []
        if not len(self.hops):                                    # the baseline: the mean position is c_1
            contexts.append(image.mean(dim=1))                                            # [B, d]
            query = contexts[0] + query
        for hop in self.hops:
            context, weights = hop(query, image)                                          # [B, d], [B, N]
            query = context + query
            contexts.append(context)
            maps.append(weights)
        if self.readout == "concat":
            return torch.cat([question, *contexts], dim=-1), maps                        # [B, d * (k + 1)]
        return query, maps
