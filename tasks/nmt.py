"""Neural machine translation with additive (Bahdanau et al. 2015) or multiplicative (Luong et al. 2015) attention.

source tokens -> embedding + bidirectional GRU/LSTM over packed sequences -> states [B, S, 2H] + mask
-> the shared attention LSTM decoder (modules.decoders) attends over them at every target word.

``attention``:
    bahdanau        additive score v^T tanh(W s + U h), query = previous decoder state, context fed to the LSTM,
                    deep output (the previous word enters the output layer)
    luong_dot       score = s^T h with the CURRENT decoder state, attentional vector tanh(W_c [c; s]) as output
    luong_general   score = s^T W h, otherwise as luong_dot
Input feeding (Luong sec. 3.3) is an option (``input_feeding``, on by default for the Luong kinds).

Training: teacher forcing, cross-entropy over real target tokens (label smoothing optional), gradient clipping
(trainer.gradient_clip_val). Validation/test: DECODED translations (batched beam search or greedy), detokenised,
scored with corpus sacreBLEU (13a tokenisation; torchmetrics ``SacreBLEUScore`` sums n-gram statistics over all
ranks, which is exactly the corpus BLEU of the gathered hypotheses), and perplexity of the references.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric, SumMetric
from torchmetrics.text import SacreBLEUScore

from datamodules.vocabulary import Vocabulary
from modules.beam_search import Decoded, beam_search, greedy_decode
from modules.decoders import AttentionLSTMDecoder, DecoderOutput
from modules.encoders import TextEncoder, TextEncoding
from tasks.alignment_figures import alignment_figure
from tasks.figure_logging import log_figure, log_table
from tasks.optim import adamw_one_cycle
from tasks.saved_vocabularies import load_vocabularies, save_vocabularies

ATTENTION_KINDS = {  # model.attention -> (score, query, deep output)
    "bahdanau": ("additive", "previous", True),
    "luong_dot": ("dot", "current", False),
    "luong_general": ("general", "current", False),
}
DECODE_MODES = ("beam", "greedy")
EVAL_SPLITS = ("val", "test")


class TranslationModel(pl.LightningModule):
    """Encoder-decoder translation with attention; see the module docstring."""

    def __init__(self, source_vocabulary: Vocabulary | None = None, target_vocabulary: Vocabulary | None = None,
                 source_vocab_size: int | None = None, target_vocab_size: int | None = None,
                 attention: str = "bahdanau", rnn: str = "gru", embed_dim: int = 256, hidden_dim: int = 256,
                 num_layers: int = 1, attention_dim: int = 256, dropout: float = 0.2,
                 input_feeding: bool | None = None, label_smoothing: float = 0.1, decode: str = "beam",
                 beam_size: int = 5, length_penalty: float = 0.6, max_decode_len: int = 100,
                 lr: float = 3e-3, weight_decay: float = 0.0, warmup_fraction: float = 0.05,
                 num_figure_samples: int = 4) -> None:
        """
        Args:
            source_vocabulary, target_vocabulary: the tokenisers (the datamodule's); saved in checkpoints. None
                only when loading a checkpoint, which restores them.
            source_vocab_size, target_vocab_size: taken from the vocabularies when given.
            attention: bahdanau | luong_dot | luong_general (see the module docstring).
            rnn: gru | lstm, the encoder's recurrent cell (the decoder is an LSTM).
            embed_dim: word embedding size (source and target).
            hidden_dim: encoder state size per direction; the decoder state is 2 * hidden_dim (the size of
                the bidirectional encoder states, which dot attention needs).
            num_layers: encoder layers.
            attention_dim: width of the additive attention MLP (bahdanau).
            dropout: on embeddings / between encoder layers and on the decoder's output vector.
            input_feeding: feed the previous attentional vector to the decoder LSTM (default: on for Luong).
            label_smoothing: in the training cross-entropy.
            decode: beam | greedy, how validation and test translate.
            beam_size, length_penalty: beam search width and GNMT length penalty alpha.
            max_decode_len: most target tokens generated (also capped at 2 x source length + 10).
            lr, weight_decay, warmup_fraction: AdamW with a one-cycle schedule.
            num_figure_samples: validation sentences shown as alignment matrices each epoch.
        """
        super().__init__()
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"model.attention={attention!r} is not a known attention; "
                             f"choose one of {list(ATTENTION_KINDS)}")
        if decode not in DECODE_MODES:
            raise ValueError(f"model.decode={decode!r}; choose one of {list(DECODE_MODES)}")
        if source_vocabulary is not None:
            source_vocab_size = len(source_vocabulary)
        if target_vocabulary is not None:
            target_vocab_size = len(target_vocabulary)
        if source_vocab_size is None or target_vocab_size is None:
            raise ValueError("TranslationModel needs the source and target vocabularies (or their sizes when "
                             "restoring a checkpoint)")
        score, query, deep_output = ATTENTION_KINDS[attention]
        if input_feeding is None:
            input_feeding = attention != "bahdanau"
        self.save_hyperparameters(ignore=["source_vocabulary", "target_vocabulary"])
        self.source_vocabulary = source_vocabulary
        self.target_vocabulary = target_vocabulary
        self.encoder = TextEncoder(source_vocab_size, embed_dim, hidden_dim, rnn=rnn, bidirectional=True,
                                   num_layers=num_layers, dropout=dropout, pad_id=Vocabulary.PAD_ID)
        self.decoder = AttentionLSTMDecoder(
            target_vocab_size, embed_dim, self.encoder.out_dim, self.encoder.out_dim, attention=score,
            attention_dim=attention_dim, dropout=dropout, gate=False, deep_output=deep_output,
            input_feeding=input_feeding, attention_query=query,
        )
        self.bleu = nn.ModuleDict({f"{split}_": SacreBLEUScore(tokenize="13a") for split in EVAL_SPLITS})
        self.token_nll = nn.ModuleDict({f"{split}_": SumMetric() for split in EVAL_SPLITS})
        self.token_count = nn.ModuleDict({f"{split}_": SumMetric() for split in EVAL_SPLITS})
        self.hypothesis_length = nn.ModuleDict({f"{split}_": MeanMetric() for split in EVAL_SPLITS})
        self._figure_batch: dict[str, Any] | None = None

    # --- model -------------------------------------------------------------------------------------------

    def encode(self, source: Tensor, source_lengths: Tensor) -> TextEncoding:
        """source [B, S] token ids, source_lengths [B] -> states [B, S, 2H] and mask [B, S]."""
        return self.encoder(source, source_lengths)

    def forward(self, source: Tensor, source_lengths: Tensor, target: Tensor) -> DecoderOutput:
        """Teacher forcing: target [B, T] ("<bos> .. <eos> <pad>..") -> outputs for T-1 steps."""
        encoded = self.encode(source, source_lengths)
        return self.decoder(encoded.states, encoded.mask, target[:, :-1])

    @torch.no_grad()
    def generate(self, source: Tensor, source_lengths: Tensor, decode: str | None = None,
                 beam_size: int | None = None) -> Decoded:
        """Translate a batch (call in eval mode): batched beam search, or greedy."""
        encoded = self.encode(source, source_lengths)
        # [B] per sentence, so a translation does not depend on which sentences share its batch
        max_len = (2 * source_lengths + 10).clamp(max=self.hparams.max_decode_len)
        args = (self.decoder, encoded.states, encoded.mask, Vocabulary.BOS_ID, Vocabulary.EOS_ID)
        if (decode or self.hparams.decode) == "greedy":
            return greedy_decode(*args, max_len=max_len, length_penalty=self.hparams.length_penalty)
        return beam_search(*args, beam_size=beam_size or self.hparams.beam_size, max_len=max_len,
                           length_penalty=self.hparams.length_penalty)

    def translate(self, sentences: list[str], decode: str | None = None) -> list[str]:
        """Raw source sentences -> detokenised translations (uses the vocabularies saved with the model)."""
        source, lengths = self.source_vocabulary.encode_batch(sentences)
        hypotheses = self.generate(source.to(self.device), lengths.to(self.device), decode=decode)
        return [self.target_vocabulary.decode(h.tokens) for h in hypotheses]

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, list]:
        """source [B, S] + source_lengths [B] -> translations, the tokens on both sides and each target token's
        attention over the source [L_b, S]."""
        hypotheses = self.generate(batch["source"], batch["source_lengths"])
        lengths = batch["source_lengths"].tolist()
        return {"translations": [self.target_vocabulary.decode(h.tokens) for h in hypotheses],
                "source_words": [self.source_vocabulary.words(ids[:n].tolist())
                                 for ids, n in zip(batch["source"].cpu(), lengths, strict=True)],
                "target_words": [self.target_vocabulary.words(h.tokens) for h in hypotheses],
                "attention": [h.attention for h in hypotheses]}

    # --- steps -------------------------------------------------------------------------------------------

    def _nll(self, out: DecoderOutput, target: Tensor, smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
        """-> (loss to optimise, summed NLL of the real tokens, number of real tokens)."""
        targets = target[:, 1:]                                                            # [B, T]
        logits = out.logits.float().transpose(1, 2)                                        # [B, V, T]
        nll = F.cross_entropy(logits, targets, ignore_index=Vocabulary.PAD_ID, reduction="sum")
        count = (targets != Vocabulary.PAD_ID).sum()
        loss = nll / count.clamp(min=1)
        if smoothing > 0:
            loss = F.cross_entropy(logits, targets, ignore_index=Vocabulary.PAD_ID, label_smoothing=smoothing)
        return loss, nll, count

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        out = self(batch["source"], batch["source_lengths"], batch["target"])
        loss, nll, count = self._nll(out, batch["target"], self.hparams.label_smoothing)
        batch_size = len(batch["target"])
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log("train/nll", nll / count.clamp(min=1), on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val", keep_figure=batch_idx == 0)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test", keep_figure=False)

    def _evaluate(self, batch: dict[str, Any], split: str, keep_figure: bool) -> None:
        key = f"{split}_"
        out = self(batch["source"], batch["source_lengths"], batch["target"])
        _, nll, count = self._nll(out, batch["target"], smoothing=0.0)
        self.token_nll[key].update(nll)
        self.token_count[key].update(count.float())
        hypotheses = self.generate(batch["source"], batch["source_lengths"])
        translations = [self.target_vocabulary.decode(h.tokens) for h in hypotheses]
        self.bleu[key].update(translations, [[reference] for reference in batch["references"]])
        self.hypothesis_length[key].update(torch.tensor([float(len(h.tokens)) for h in hypotheses]))
        if keep_figure:
            count_shown = self.hparams.num_figure_samples
            self._figure_batch = {
                "source": batch["source"][:count_shown].cpu(), "source_lengths": batch["source_lengths"][:count_shown],
                "texts": batch["sources_text"][:count_shown], "references": batch["references"][:count_shown],
                "translations": translations[:count_shown], "hypotheses": hypotheses[:count_shown],
            }

    def _log_eval_metrics(self, split: str) -> None:
        key = f"{split}_"
        mean_nll = self.token_nll[key].compute() / self.token_count[key].compute().clamp(min=1)
        values = {f"{split}/bleu": self.bleu[key].compute() * 100, f"{split}/loss": mean_nll,
                  f"{split}/perplexity": mean_nll.exp(), f"{split}/length": self.hypothesis_length[key].compute()}
        for metric in (self.bleu, self.token_nll, self.token_count, self.hypothesis_length):
            metric[key].reset()
        for name, value in values.items():
            self.log(name, value.float(), prog_bar=name in ("val/bleu", "val/loss"), sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")
        if self._figure_batch is not None and not self.trainer.sanity_checking:
            sample = self._figure_batch
            source_words = [self.source_vocabulary.words(ids[:n].tolist())
                            for ids, n in zip(sample["source"], sample["source_lengths"].tolist(), strict=True)]
            target_words = [self.target_vocabulary.words(h.tokens) for h in sample["hypotheses"]]
            attention = [h.attention for h in sample["hypotheses"]]
            log_figure(self.trainer, "val/alignment", alignment_figure(source_words, target_words, attention),
                       caption="attention of each generated token (rows) over the source tokens (columns)")
            log_table(self.trainer, "val/translations", ["source", "reference", "translation"],
                      [[s, r, t] for s, r, t in zip(sample["texts"], sample["references"], sample["translations"],
                                                    strict=True)])
        self._figure_batch = None

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    # --- checkpoints and optimiser -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_vocabularies(checkpoint, source_vocabulary=self.source_vocabulary,
                          target_vocabulary=self.target_vocabulary)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.source_vocabulary, self.target_vocabulary = load_vocabularies(
            checkpoint, "source_vocabulary", "target_vocabulary")

    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_one_cycle(self, [{"params": [p for p in self.parameters() if p.requires_grad]}],
                               lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
                               warmup_fraction=self.hparams.warmup_fraction)
