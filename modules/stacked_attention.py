"""Stacked attention (Yang et al. 2016): the question queries the image grid k times, refining itself each hop.

    v_I = tanh(W v)                     image grid [B, N, d]
    u_0 = the question vector           [B, d]
    hop k: p_k = softmax(w_p^T tanh(W_I v_I + W_Q u_{k-1}))       (additive attention, its OWN weights per hop)
           u_k = sum_n p_kn v_In + u_{k-1}

Each hop is a separate attention instance (``modules.attention``: additive as in the paper, or multiplicative);
a common port bug reuses one module for every hop. With ``hops=0`` the model is the no-attention baseline:
u = mean_n v_In + u_0.
"""

from __future__ import annotations

from torch import Tensor, nn

from modules.attention import build_attention


class StackedAttention(nn.Module):
    """k attention hops over an image grid, driven by a question vector."""

    def __init__(self, dim: int, hops: int, attention_dim: int, score: str = "additive") -> None:
        """
        Args:
            dim: d, size of the projected image positions and of the question vector.
            hops: number of attention layers (0: mean pooling, the no-attention baseline).
            attention_dim: width of each hop's attention (k in the paper).
            score: "additive" (the paper's) or "multiplicative" (tanh(W_Q u) * tanh(W_I v); see
                modules.attention.MultiplicativeAttention).
        """
        super().__init__()
        if hops < 0:
            raise ValueError(f"model.hops must be >= 0, got {hops}")
        if score not in ("additive", "multiplicative"):
            raise ValueError(f"model.score={score!r}: choose additive or multiplicative")
        self.hops = nn.ModuleList([build_attention(score, dim, dim, attention_dim) for _ in range(hops)])

    def forward(self, image: Tensor, question: Tensor) -> tuple[Tensor, list[Tensor]]:
        """image [B, N, d], question [B, d] -> (refined query u_k [B, d], attention of every hop: k x [B, N])."""
        query = question                                                                  # [B, d]
        maps = []
        if not len(self.hops):
            return image.mean(dim=1) + query, maps
        for hop in self.hops:
            context, weights = hop(query, image)                                          # [B, d], [B, N]
            query = context + query
            maps.append(weights)
        return query, maps
