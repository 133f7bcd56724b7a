"""Tasks that decode a token sequence from what they attend over: image and video captioning, translation.

A subclass supplies what differs:

    memory(batch, split)          what the decoder attends over [B, N, D] and its mask [B, N] (None: all real)
    target_tokens(batch)          the reference sequence [B, L] ("<bos> .. <eos> <pad>..")
    output_vocabulary             the tokeniser that turns decoded ids into text
    decode_limit(batch)           most decoding steps: an int, or [B] per sample
    update_decoded_metrics(...)   score the decoded outputs; decoded_metric_values(split) reads them out
    figure_sample(...), log_figures(...)

and this base does the rest once: the teacher-forced token loss (label smoothing on the training loss only),
the reference loss and perplexity on val/test, decoding (batched beam search or greedy) and the logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric, SumMetric

from metrics.per_split import PerSplit
from modules.beam_search import Decoded, beam_search, greedy_decode
from modules.decoders import DecoderOutput
from tasks.base import Task
from text.vocabulary import Vocabulary


@dataclass
class TokenLoss:
    """The teacher-forced loss of a batch of reference sequences."""

    loss: Tensor      # () what training minimises: mean NLL per real token, label-smoothed when asked
    nll: Tensor       # [B, T] -log p(target token), 0 at padding
    tokens: Tensor    # () number of real (non-padding) target tokens

    @property
    def mean_nll(self) -> Tensor:
        return self.nll.sum() / self.tokens.clamp(min=1)


def token_loss(logits: Tensor, targets: Tensor, smoothing: float = 0.0, pad_id: int = Vocabulary.PAD_ID,
               per_tokens: Tensor | None = None) -> TokenLoss:
    """logits [B, T, V], targets [B, T] -> TokenLoss, from one log-softmax.

    With ``smoothing`` the loss is torch's label-smoothed cross-entropy, written out so the per-token NLL comes
    from the same log-probabilities: (1 - s) * NLL + s / V * sum_v -log p_v, both averaged over real tokens.
    ``per_tokens``: divide the summed loss by this instead of this batch's real tokens (under DDP: the tokens of
    all ranks' batches over the world size, so the averaged gradient is that of the whole batch).
    """
    log_probs = logits.float().transpose(1, 2).log_softmax(dim=1)                       # [B, V, T]
    nll = F.nll_loss(log_probs, targets, ignore_index=pad_id, reduction="none")       # [B, T]
    real = targets != pad_id                                                           # [B, T]
    count = real.sum()
    divisor = count.clamp(min=1) if per_tokens is None else per_tokens
    result = TokenLoss(nll.sum() / divisor, nll, count)
    if smoothing > 0:
        uniform = -log_probs.sum(dim=1).masked_fill(~real, 0.0).sum() / (count if per_tokens is None else divisor)
        result.loss = (1 - smoothing) * result.loss + uniform * (smoothing / log_probs.size(1))
    return result


class SequenceTask(Task):
    """Base of the sequence-decoding tasks; see the module docstring. Subclasses build ``self.decoder`` (a
    ``modules.decoders.AttentionLSTMDecoder``) and call ``super().__init__()`` first."""

    progress_bar_metrics: tuple[str, ...] = ("val/loss",)

    def __init__(self) -> None:
        super().__init__()
        # summed over tokens and ranks in float64, so the split's loss does not depend on how it was batched
        self.reference_nll = PerSplit(lambda: SumMetric().set_dtype(torch.float64))
        self.reference_tokens = PerSplit(SumMetric)
        self.output_length = PerSplit(MeanMetric)                      # words per decoded output

    # --- what a task supplies ------------------------------------------------------------------------------

    output_vocabulary: Vocabulary

    def memory(self, batch: dict[str, Any], split: str) -> tuple[Tensor, Tensor | None]:
        """The batch's memory [B, N, D] and its mask [B, N] (None: every position is real)."""
        raise NotImplementedError

    def target_tokens(self, batch: dict[str, Any]) -> Tensor:
        """The batch's reference token ids [B, L], BOS first, EOS then padding at the end."""
        raise NotImplementedError

    def decode_limit(self, batch: dict[str, Any]) -> int | Tensor:
        """Most decoding steps for the batch: one limit, or a [B] tensor of per-sample limits."""
        return self.hparams.max_decode_len

    def training_losses(self, out: DecoderOutput, tokens: Tensor, per_tokens: Tensor | None = None
                        ) -> dict[str, Tensor]:
        """Teacher-forced outputs and the reference tokens [B, L] -> {"loss": ..., other logged terms};
        ``per_tokens``: what the word loss is averaged over (see ``token_loss``)."""
        loss = token_loss(out.logits, tokens[:, 1:], self.hparams.label_smoothing, per_tokens=per_tokens)
        return {"loss": loss.loss, "nll": loss.mean_nll}

    def update_decoded_metrics(self, batch: dict[str, Any], split: str, decoded: Decoded, texts: list[str]) -> None:
        """Score a batch's decoded outputs (``texts`` are their detokenised strings)."""

    def decoded_metric_values(self, split: str) -> dict[str, Tensor]:
        """``{"<split>/<name>": value}`` of the decoded outputs' metrics over the epoch; resets them."""
        return {}

    def figure_sample(self, batch: dict[str, Any], decoded: Decoded, texts: list[str]) -> dict[str, Any] | None:
        """What the validation figure shows of the first batch (CPU tensors), or None for no figure."""
        return None

    # --- decoding ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def decode(self, memory: Tensor, mask: Tensor | None, max_len: int | Tensor | None = None,
               beam_size: int | None = None, strategy: str | None = None) -> Decoded:
        """memory [B, N, D] (+ mask [B, N]) -> each sample's output by ``strategy`` "beam" (batched beam search) or
        "greedy" (default: the task's ``decode`` option, else beam; call in eval mode)."""
        max_len = self.hparams.max_decode_len if max_len is None else max_len
        args = (self.decoder, memory, mask, Vocabulary.BOS_ID, Vocabulary.EOS_ID)
        if (strategy or self.hparams.get("decode", "beam")) == "greedy":
            return greedy_decode(*args, max_len=max_len, length_penalty=self.hparams.length_penalty)
        return beam_search(*args, beam_size=beam_size or self.hparams.beam_size, max_len=max_len,
                           length_penalty=self.hparams.length_penalty)

    def texts(self, decoded: Decoded) -> list[str]:
        """Decoded outputs -> their detokenised strings."""
        return [self.output_vocabulary.decode(h.tokens) for h in decoded]

    # --- steps ---------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        memory, mask = self.memory(batch, "train")                                      # [B, N, D], [B, N]
        tokens = self.target_tokens(batch)                                               # [B, L]
        out = self.decoder(memory, mask, tokens[:, :-1])
        losses = self.training_losses(out, tokens, self.tokens_per_rank(tokens[:, 1:]))
        batch_size = len(tokens)
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, on_step=True, on_epoch=True,
                      batch_size=batch_size)
        return losses["loss"]

    def tokens_per_rank(self, targets: Tensor) -> Tensor | None:
        """Under DDP: the real target tokens of every rank's batch over the world size; None in one process.

        Ranks' batches hold different numbers of tokens; averaging each rank's own token mean would weight a token
        of a short batch more than one of a long batch. Dividing every rank's summed loss by this, DDP's gradient
        average is the gradient of the whole batch's token mean, as in one process.
        """
        world = self.trainer.world_size if self._trainer is not None else 1
        if world == 1:
            return None
        here = (targets != Vocabulary.PAD_ID).sum().float()
        return self.trainer.strategy.reduce(here, reduce_op="sum") / world

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate(batch, "val", keep_figure=batch_idx == 0)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluate(batch, "test", keep_figure=False)

    def evaluate(self, batch: dict[str, Any], split: str, keep_figure: bool) -> None:
        """The references' loss, then the decoded outputs scored (and kept for the figure when asked)."""
        memory, mask = self.memory(batch, split)                                        # [B, N, D], [B, N]
        tokens = self.target_tokens(batch)                                               # [B, L]
        reference = token_loss(self.decoder(memory, mask, tokens[:, :-1]).logits, tokens[:, 1:])
        self.reference_nll[split].update(reference.nll.sum(dtype=torch.float64))
        self.reference_tokens[split].update(reference.tokens.float())
        decoded = self.decode(memory, mask, self.decode_limit(batch))
        texts = self.texts(decoded)
        self.output_length[split].update(decoded.lengths.float())
        self.update_decoded_metrics(batch, split, decoded, texts)
        if keep_figure and (sample := self.figure_sample(batch, decoded, texts)) is not None:
            self.keep_figure_sample(sample)

    def log_split_end(self, split: str) -> None:
        mean_nll = self.reference_nll[split].compute() / self.reference_tokens[split].compute().clamp(min=1)
        values = {f"{split}/loss": mean_nll, f"{split}/perplexity": mean_nll.exp(),
                  f"{split}/length": self.output_length[split].compute(), **self.decoded_metric_values(split)}
        for metric in (self.reference_nll, self.reference_tokens, self.output_length):
            metric[split].reset()
        for name, value in values.items():
            # already reduced over ranks by the metrics themselves
            self.log(name, value.float(), prog_bar=name in self.progress_bar_metrics, sync_dist=False)
