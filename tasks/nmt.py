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

from torch import Tensor
from torchmetrics.text import SacreBLEUScore

from figures.alignment import alignment_figure
from figures.publish import log_figure, log_table
from metrics.per_split import PerSplit
from modules.beam_search import Decoded
from modules.decoders import AttentionLSTMDecoder, DecoderOutput
from modules.encoders import TextEncoder, TextEncoding
from tasks.sequence import SequenceTask
from text.vocabulary import Vocabulary

ATTENTION_KINDS = {  # model.attention -> (score, query, deep output)
    "bahdanau": ("additive", "previous", True),
    "luong_dot": ("dot", "current", False),
    "luong_general": ("general", "current", False),
}
DECODE_MODES = ("beam", "greedy")


class TranslationModel(SequenceTask):
    """Encoder-decoder translation with attention; see the module docstring."""

    vocabulary_names = ("source_vocabulary", "target_vocabulary")
    progress_bar_metrics = ("val/bleu", "val/loss")

    def __init__(self, *, source_vocabulary: Vocabulary | None = None, target_vocabulary: Vocabulary | None = None,
                 source_vocab_size: int | None = None, target_vocab_size: int | None = None, attention: str, rnn: str,
                 embed_dim: int, hidden_dim: int, num_layers: int, attention_dim: int, dropout: float,
                 input_feeding: bool | None, label_smoothing: float, decode: str, beam_size: int,
                 length_penalty: float, max_decode_len: int, lr: float, weight_decay: float, warmup_fraction: float,
                 num_figure_samples: int) -> None:
        """
        Args:
            source_vocabulary, target_vocabulary: the tokenisers (the datamodule's); saved in checkpoints. None
                only when loading a checkpoint, which restores them.
            source_vocab_size, target_vocab_size: taken from the vocabularies when given (kept so a checkpoint
                rebuilds the layers).
            attention: bahdanau | luong_dot | luong_general (see the module docstring).
            rnn: gru | lstm, the encoder's recurrent cell (the decoder is an LSTM).
            embed_dim: word embedding size (source and target).
            hidden_dim: encoder state size per direction; the decoder state is 2 * hidden_dim (the size of
                the bidirectional encoder states, which dot attention needs).
            num_layers: encoder layers.
            attention_dim: width of the additive attention MLP (bahdanau).
            dropout: on embeddings / between encoder layers and on the decoder's output vector.
            input_feeding: feed the previous attentional vector to the decoder LSTM (None: on for Luong).
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
        self.bleu = PerSplit(lambda: SacreBLEUScore(tokenize="13a"))

    @property
    def output_vocabulary(self) -> Vocabulary:
        return self.target_vocabulary

    # --- model ---------------------------------------------------------------------------------------------

    def encode(self, source: Tensor, source_lengths: Tensor) -> TextEncoding:
        """source [B, S] token ids, source_lengths [B] -> states [B, S, 2H] and mask [B, S]."""
        return self.encoder(source, source_lengths)

    def memory(self, batch: dict[str, Any], split: str) -> tuple[Tensor, Tensor | None]:
        encoded = self.encode(batch["source"], batch["source_lengths"])
        return encoded.states, encoded.mask                                              # [B, S, 2H], [B, S]

    def target_tokens(self, batch: dict[str, Any]) -> Tensor:
        return batch["target"]

    def decode_limit(self, batch: dict[str, Any]) -> Tensor:
        """[B] per sentence, so a translation does not depend on which sentences share its batch."""
        return self.source_limit(batch["source_lengths"])

    def source_limit(self, source_lengths: Tensor) -> Tensor:
        return (2 * source_lengths + 10).clamp(max=self.hparams.max_decode_len)

    def forward(self, source: Tensor, source_lengths: Tensor, target: Tensor) -> DecoderOutput:
        """Teacher forcing: target [B, T] ("<bos> .. <eos> <pad>..") -> outputs for T-1 steps."""
        encoded = self.encode(source, source_lengths)
        return self.decoder(encoded.states, encoded.mask, target[:, :-1])

    def generate(self, source: Tensor, source_lengths: Tensor, decode: str | None = None,
                 beam_size: int | None = None) -> Decoded:
        """Translate a batch (call in eval mode) by ``decode`` beam | greedy (default: the model's)."""
        encoded = self.encode(source, source_lengths)
        return self.decode(encoded.states, encoded.mask, self.source_limit(source_lengths), beam_size, decode)

    def translate(self, sentences: list[str], decode: str | None = None) -> list[str]:
        """Raw source sentences -> detokenised translations (uses the vocabularies saved with the model)."""
        source, lengths = self.source_vocabulary.encode_batch(sentences)
        return self.texts(self.generate(source.to(self.device), lengths.to(self.device), decode))

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, list]:
        """source [B, S] + source_lengths [B] -> translations, the tokens on both sides and each target token's
        attention over the source [L_b, S]."""
        hypotheses = self.generate(batch["source"], batch["source_lengths"])
        return {"translations": self.texts(hypotheses),
                "source_words": self.source_words(batch["source"], batch["source_lengths"]),
                "target_words": [self.target_vocabulary.words(h.tokens) for h in hypotheses],
                "attention": [h.attention for h in hypotheses]}

    def source_words(self, source: Tensor, source_lengths: Tensor) -> list[list[str]]:
        """source [B, S] ids + lengths [B] -> each sentence's source tokens."""
        return [self.source_vocabulary.words(ids[:n].tolist())
                for ids, n in zip(source.cpu(), source_lengths.tolist(), strict=True)]

    # --- evaluation ----------------------------------------------------------------------------------------

    def update_decoded_metrics(self, batch: dict[str, Any], split: str, decoded: Decoded, texts: list[str]) -> None:
        self.bleu[split].update(texts, [[reference] for reference in batch["references"]])

    def decoded_metric_values(self, split: str) -> dict[str, Tensor]:
        values = {f"{split}/bleu": self.bleu[split].compute() * 100}
        self.bleu[split].reset()
        return values

    def figure_sample(self, batch: dict[str, Any], decoded: Decoded, texts: list[str]) -> dict[str, Any]:
        count = self.hparams.num_figure_samples
        return {"source_words": self.source_words(batch["source"][:count], batch["source_lengths"][:count]),
                "texts": batch["sources_text"][:count], "references": batch["references"][:count],
                "translations": texts[:count], "hypotheses": decoded[:count]}

    def log_figures(self, sample: dict[str, Any]) -> None:
        """Each sentence's alignment matrix, and the translations table."""
        target_words = [self.target_vocabulary.words(h.tokens) for h in sample["hypotheses"]]
        attention = [h.attention for h in sample["hypotheses"]]
        log_figure(self.trainer, "val/alignment", alignment_figure(sample["source_words"], target_words, attention),
                   caption="attention of each generated token (rows) over the source tokens (columns)")
        log_table(self.trainer, "val/translations", ["source", "reference", "translation"],
                  [[s, r, t] for s, r, t in zip(sample["texts"], sample["references"], sample["translations"],
                                                strict=True)])
