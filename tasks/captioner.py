"""What image and video captioning share: Show, Attend and Tell's decoder, losses and caption metrics.

Training loss (per batch):
    cross-entropy over real tokens (padding excluded, label smoothing optional)
    + alpha_c * doubly stochastic penalty, averaged over the N memory positions (Xu eq. 14, as the common
      PyTorch port scales it, so alpha_c = 1 does not drown the word loss on large grids)
    hard attention adds REINFORCE for the sampled locations (Xu eq. 12 with the paper's variance reduction):
      - reinforce_weight * mean_b[(r_b - baseline) * sum_t log p(s_bt)]   with r_b = the mean log p(word) of caption b
        given the sampled locations (the paper's signal log p(y | s) per word) and baseline a moving average of r
      - entropy_weight * the mean entropy of the attention maps (a bonus: keeps exploring)
    and ``mix_soft_prob`` of the rows use the soft expectation instead of a sample, as the authors' code did.

Validation and test score DECODED captions (batched beam search): BLEU-1..4 and CIDEr-D, the attention entropy of
every emitted word and, where the data knows what each word names (generated scenes and clips), attention
correctness: the attention mass each naming word puts on what it names, next to a uniform map's.

A captioner supplies its memory (``memory``), what a frozen encoder caches (``feature_cache_encoder`` /
``feature_cache_loader``), the attention mass on what words name (``grounded_mass``) and its figure.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from metrics.attention_correctness import attention_entropy
from metrics.captions import caption_metric_collection
from metrics.distributed import compute_quietly, updated_on_any_rank
from metrics.per_split import PerSplit
from modules.beam_search import Decoded
from modules.decoders import AttentionLSTMDecoder, DecoderOutput, doubly_stochastic_penalty
from modules.encoders import is_frozen
from modules.feature_cache import FeatureCache
from tasks.image_encoder import build_image_encoder
from tasks.sequence import SequenceTask, token_loss
from text.vocabulary import Vocabulary

ATTENTION_TYPES = ("soft", "hard")


class Captioner(SequenceTask):
    """Base of ``ImageCaptioner`` and ``VideoCaptioner``: see the module docstring."""

    vocabulary_names = ("vocabulary",)
    progress_bar_metrics = ("val/loss", "val/cider", "val/bleu4")

    def __init__(self, *, vocabulary: Vocabulary | None = None, vocab_size: int | None = None, encoder: dict[str, Any],
                 image_size: int, attention: str, score: str, embed_dim: int, hidden_dim: int, attention_dim: int,
                 dropout: float, gate: bool, deep_output: bool, alpha_c: float, reinforce_weight: float,
                 entropy_weight: float, baseline_decay: float, mix_soft_prob: float, hard_eval_mode: str,
                 label_smoothing: float, beam_size: int, max_decode_len: int, length_penalty: float, lr: float,
                 encoder_lr_scale: float, weight_decay: float, warmup_fraction: float, num_figure_samples: int,
                 cache_features: bool) -> None:
        """
        Args:
            vocabulary: the word vocabulary (the datamodule's); saved in checkpoints. None only when loading a
                checkpoint, which restores it.
            vocab_size: taken from ``vocabulary`` when given (kept so a checkpoint rebuilds the layers).
            encoder: the image encoder's config (``_target_`` and its arguments: ``configs/model/encoder/``).
            image_size: input size (the encoder's grid is measured from it).
            attention: "soft" (deterministic expectation) or "hard" (stochastic, REINFORCE).
            score: how attention scores positions: additive (Xu/Bahdanau), general or dot (Luong).
            embed_dim, hidden_dim, attention_dim, dropout, gate, deep_output: the decoder
                (``modules.decoders.AttentionLSTMDecoder``).
            alpha_c: weight of the doubly stochastic penalty (0: off).
            reinforce_weight, entropy_weight, baseline_decay, mix_soft_prob, hard_eval_mode: hard attention.
            label_smoothing: in the training cross-entropy.
            beam_size, max_decode_len, length_penalty: decoding of val/test captions (beam 1 = greedy).
            lr, encoder_lr_scale, weight_decay, warmup_fraction: AdamW with a one-cycle schedule.
            num_figure_samples: validation items shown with every word's attention each epoch.
            cache_features: a frozen encoder's outputs are computed once per item of each split (on first use,
                fp16, in host memory, by every DDP rank) and looked up afterwards (``modules.feature_cache``).
        """
        super().__init__()
        if attention not in ATTENTION_TYPES:
            raise ValueError(f"model.attention={attention!r} is not a known attention; "
                             f"choose one of {list(ATTENTION_TYPES)}")
        if vocabulary is not None:
            vocab_size = len(vocabulary)
        if vocab_size is None:
            raise ValueError(f"{type(self).__name__} needs a vocabulary (or vocab_size when restoring a checkpoint)")
        self.save_hyperparameters(ignore=["vocabulary"])
        self.vocabulary = vocabulary
        self.encoder = build_image_encoder(encoder)
        if cache_features and not is_frozen(self.encoder):
            raise ValueError("model.cache_features=true needs a frozen encoder (model/encoder=resnet "
                             "model.encoder.trainable=none): cached features of a trained encoder would go stale")
        self._feature_caches: dict[str, FeatureCache] = {}
        self.decoder = AttentionLSTMDecoder(
            vocab_size, embed_dim, hidden_dim, self.encoder.out_dim, attention=score,
            attention_dim=attention_dim, dropout=dropout, gate=gate, deep_output=deep_output,
            hard=attention == "hard", hard_eval_mode=hard_eval_mode, mix_soft_prob=mix_soft_prob,
        )
        self.register_buffer("reward_baseline", torch.zeros(()))  # hard attention's moving average of r
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))
        self.caption_scores = PerSplit(caption_metric_collection)
        self.correctness = PerSplit(MeanMetric)
        self.correctness_uniform = PerSplit(MeanMetric)
        self.entropy = PerSplit(MeanMetric)

    @property
    def output_vocabulary(self) -> Vocabulary:
        return self.vocabulary

    def target_tokens(self, batch: dict[str, Any]) -> Tensor:
        return batch["tokens"]

    # --- what a captioner supplies -------------------------------------------------------------------------

    def feature_cache_encoder(self) -> nn.Module:
        """The frozen module whose outputs ``cache_features`` stores."""
        raise NotImplementedError

    def feature_cache_loader(self, split: str) -> DataLoader:
        """Every item of a split once, as batches the feature cache encoder takes, with their index."""
        raise NotImplementedError

    def grounded_mass(self, batch: dict[str, Any], words: Tensor, attention: Tensor
                      ) -> tuple[Tensor | None, Tensor | None]:
        """words [B, L] (-1 padded), attention [B, L, N] -> the attention mass of every word that names something
        on what it names [W], and a uniform map's [W]; (None, None) when the data does not say."""
        return None, None

    # --- model ---------------------------------------------------------------------------------------------

    def cached_features(self, split: str, index: Tensor) -> Tensor:
        """Rows ``index`` [B] of the split's feature cache, built on first use by running
        ``feature_cache_encoder()`` once over ``feature_cache_loader(split)``."""
        if split not in self._feature_caches:
            loader = self.feature_cache_loader(split)
            self._feature_caches[split] = FeatureCache.build(self.feature_cache_encoder(), loader, len(loader.dataset),
                                                             self.device, progress=self.trainer.is_global_zero,
                                                             split=split)
        return self._feature_caches[split].lookup(index, self.device)

    def decode_captions(self, memory: Tensor, mask: Tensor | None) -> dict[str, list]:
        """memory [B, N, D] (+ mask [B, N]) -> the beam-searched caption of each and each word's attention."""
        decoded = self.decode(memory, mask)
        return {"captions": self.texts(decoded), "attention": [h.attention for h in decoded]}

    # --- losses --------------------------------------------------------------------------------------------

    def training_losses(self, out: DecoderOutput, tokens: Tensor, per_tokens: Tensor | None = None
                        ) -> dict[str, Tensor]:
        words = token_loss(out.logits, tokens[:, 1:], self.hparams.label_smoothing, per_tokens=per_tokens)
        real = tokens[:, 1:] != Vocabulary.PAD_ID                                        # [B, T]
        positions = out.attention.size(-1)
        losses = {"nll": words.mean_nll, "doubly_stochastic": doubly_stochastic_penalty(
            out.attention.float(), real, self.hparams.alpha_c) / positions}
        losses["loss"] = words.loss + losses["doubly_stochastic"]
        if out.log_probs is not None and self.training:
            losses.update(self.reinforce(words.nll.detach(), real, out.log_probs.float(), out.entropy.float()))
            losses["loss"] = (losses["loss"] + self.hparams.reinforce_weight * losses["reinforce"]
                              - self.hparams.entropy_weight * losses["attention_entropy"])
        return losses

    def reinforce(self, nll: Tensor, real: Tensor, log_probs: Tensor, entropy: Tensor) -> dict[str, Tensor]:
        """REINFORCE for the sampled locations: nll, log_probs, entropy [B, T]; real [B, T] bool."""
        real_f = real.float()
        # the paper's signal is log p(caption | s); its per-word mean keeps the scale independent of caption length
        # (summed over words, the REINFORCE term outgrew the word loss and training diverged)
        reward = -(nll * real_f).sum(1) / real_f.sum(1).clamp(min=1)                      # [B] mean log p(word | s)
        batch_reward = reward.mean()
        if not bool(self.baseline_ready):  # first batch: start the baseline at the reward, not at 0
            self.reward_baseline.copy_(batch_reward)
            self.baseline_ready.fill_(True)
        advantage = reward - self.reward_baseline                                         # [B]
        decay = self.hparams.baseline_decay
        self.reward_baseline.mul_(decay).add_((1 - decay) * batch_reward)
        sampled_log_prob = (log_probs * real_f).sum(1)                                    # [B]
        return {
            "reinforce": -(advantage * sampled_log_prob).mean(),
            "attention_entropy": (entropy * real_f).sum() / real_f.sum().clamp(min=1),
            "reward": batch_reward, "baseline": self.reward_baseline.clone(),
        }

    # --- evaluation ----------------------------------------------------------------------------------------

    def update_decoded_metrics(self, batch: dict[str, Any], split: str, decoded: Decoded, texts: list[str]) -> None:
        self.caption_scores[split].update(texts, batch["references"])
        words = decoded.tokens.to(self.device)                                            # [B, L], -1 padded
        attention = decoded.attention.to(self.device)                                      # [B, L, N]
        word_mask = words >= 0
        if word_mask.any():
            self.entropy[split].update(attention_entropy(attention, word_mask))
        mass, uniform = self.grounded_mass(batch, words, attention)
        if mass is not None and mass.numel():
            self.correctness[split].update(mass)
            self.correctness_uniform[split].update(uniform)

    def decoded_metric_values(self, split: str) -> dict[str, Tensor]:
        values = {f"{split}/{name}": value for name, value in self.caption_scores[split].compute().items()}
        self.caption_scores[split].reset()
        for name, metric in (("attention_entropy", self.entropy), ("attention_correctness", self.correctness),
                             ("attention_correctness_uniform", self.correctness_uniform)):
            if updated_on_any_rank(self, metric[split]):  # only what was measured (no boxes on real data)
                values[f"{split}/{name}"] = compute_quietly(metric[split])
            metric[split].reset()
        return values

    # --- optimiser -----------------------------------------------------------------------------------------

    def parameter_groups(self) -> list[dict[str, Any]]:
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        decoder = [p for n, p in self.named_parameters() if p.requires_grad and not n.startswith("encoder.")]
        return [{"params": decoder}, {"params": encoder, "lr_scale": self.hparams.encoder_lr_scale}]
