"""``compile_decoding=true`` (train.py, eval.py, predict.py): decode with the compiled fused additive score."""

from __future__ import annotations

from torch import nn

from modules.additive_score_cpu import fuse_additive_scores


def compile_decoding(model: nn.Module) -> str:
    """Switch every additive attention of ``model`` to the compiled fused score; the sentence to log."""
    fused = fuse_additive_scores(model)
    return (f"compile_decoding: {fused} additive attention(s) score decoding and evaluation with a compiled fused "
            "kernel on CPUs without AVX-512 (compiled on first use; eager elsewhere)")
