"""Image captioning with soft or hard attention: Show, Attend and Tell (Xu et al. 2015).

image [B, 3, H, W] -> encoder -> feature grid memory [B, N, D] -> attention LSTM decoder -> words.

Training loss (per batch):
    cross-entropy over real tokens (padding excluded)
    + alpha_c * doubly stochastic penalty, averaged over the N grid positions (Xu eq. 14, as the common
      PyTorch port scales it, so alpha_c = 1 does not drown the word loss on large grids)
    hard attention adds REINFORCE for the sampled locations (Xu eq. 12 with the paper's variance reduction):
      - reinforce_weight * mean_b[(r_b - baseline) * sum_t log p(s_bt)]   with r_b = the mean log p(word) of caption b
        given the sampled locations (the paper's signal log p(y | s) per word) and baseline a moving average of r
      - entropy_weight * the mean entropy of the attention maps (a bonus: keeps exploring)
    and half the rows use the soft expectation instead of a sample (``mix_soft_prob``), as the authors' code did.

Validation and test score DECODED captions (batched beam search): BLEU-1..4 and CIDEr-D, plus the attention
entropy of every emitted word and, where the data knows the objects (generated scenes), attention correctness:
the attention mass of each word that names an object inside that object's box, next to a uniform map's.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from datamodules.vocabulary import Vocabulary
from modules.beam_search import Decoded, beam_search
from modules.decoders import AttentionLSTMDecoder, DecoderOutput, doubly_stochastic_penalty
from modules.encoders import IMAGENET_MEAN, IMAGENET_STD, image_encoder_from_options, is_frozen, measure_grid
from modules.feature_cache import FeatureCache
from tasks.attention_correctness import (
    attention_entropy,
    grounded_attention_mass,
    word_object_grounding,
)
from tasks.caption_figures import attention_caption_figure, caption_table_rows
from tasks.caption_metrics import caption_metric_collection
from tasks.epoch_metrics import compute_quietly, updated_on_any_rank
from tasks.figure_logging import log_figure, log_table
from tasks.optim import adamw_one_cycle
from tasks.saved_vocabularies import load_vocabularies, save_vocabularies

ATTENTION_TYPES = ("soft", "hard")
EVAL_SPLITS = ("val", "test")


class ImageCaptioner(pl.LightningModule):
    """Show, Attend and Tell: see the module docstring for the losses and what is logged."""

    def __init__(self, vocabulary: Vocabulary | None = None, vocab_size: int | None = None, image_size: int = 64,
                 attention: str = "soft", score: str = "additive", encoder: str = "conv",
                 channels: tuple[int, ...] = (32, 64, 128), strided: bool = True, resnet_arch: str = "resnet101",
                 pretrained: bool = False, trainable: str = "none", grid_size: int = 14,
                 embed_dim: int = 64, hidden_dim: int = 256, attention_dim: int = 128, dropout: float = 0.3,
                 gate: bool = True, deep_output: bool = True, alpha_c: float = 1.0,
                 reinforce_weight: float = 1.0, entropy_weight: float = 0.01, baseline_decay: float = 0.9,
                 mix_soft_prob: float = 0.5, hard_eval_mode: str = "expectation", label_smoothing: float = 0.0,
                 beam_size: int = 3, max_decode_len: int = 20, length_penalty: float = 0.0,
                 lr: float = 2e-3, encoder_lr_scale: float = 1.0, weight_decay: float = 0.0,
                 warmup_fraction: float = 0.05, num_figure_samples: int = 4, cache_features: bool = False) -> None:
        """
        Args:
            vocabulary: the word vocabulary (the datamodule's); saved in checkpoints. None only when loading a
                checkpoint, which restores it.
            vocab_size: taken from ``vocabulary`` when given (kept so a checkpoint rebuilds the layers).
            image_size: input size (for figures; the encoder's grid is measured from it).
            attention: "soft" (deterministic expectation) or "hard" (stochastic, REINFORCE).
            score: how attention scores locations: additive (Xu/Bahdanau), general or dot (Luong).
            encoder: "conv" (a small CNN: ``channels`` per stage, ``strided`` downsampling) or "resnet" (a
                torchvision trunk: ``resnet_arch``, ``pretrained`` ImageNet weights (a download), ``trainable``
                none|last|all, ``grid_size`` x grid_size positions); see ``modules.encoders``.
            embed_dim, hidden_dim, attention_dim, dropout, gate, deep_output: the decoder
                (``modules.decoders.AttentionLSTMDecoder``).
            alpha_c: weight of the doubly stochastic penalty (0: off).
            reinforce_weight, entropy_weight, baseline_decay, mix_soft_prob, hard_eval_mode: hard attention.
            label_smoothing: in the training cross-entropy.
            beam_size, max_decode_len, length_penalty: decoding of val/test captions (beam 1 = greedy).
            lr, encoder_lr_scale, weight_decay, warmup_fraction: AdamW with a one-cycle schedule.
            num_figure_samples: validation images shown with per-word attention maps each epoch.
            cache_features: a frozen encoder's grid is computed once per image of each split (on first use, fp16,
                in host memory, by every DDP rank) and looked up afterwards (``modules.feature_cache``).
        """
        super().__init__()
        if attention not in ATTENTION_TYPES:
            raise ValueError(f"model.attention={attention!r} is not a known attention; "
                             f"choose one of {list(ATTENTION_TYPES)}")
        if vocabulary is not None:
            vocab_size = len(vocabulary)
        if vocab_size is None:
            raise ValueError("ImageCaptioner needs a vocabulary (or vocab_size when restoring a checkpoint)")
        self.save_hyperparameters(ignore=["vocabulary"])
        self.vocabulary = vocabulary
        self.encoder = image_encoder_from_options(encoder, channels, strided, resnet_arch, pretrained, trainable,
                                                  grid_size)
        self.normalize = encoder == "resnet"  # torchvision trunks expect ImageNet-normalised input
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.grid = measure_grid(self.encoder, image_size)                                # (h, w)
        if cache_features and not is_frozen(self.encoder):
            raise ValueError("model.cache_features=true needs a frozen encoder (model.encoder=resnet "
                             "model.trainable=none): cached features of a trained encoder would go stale")
        self._feature_caches: dict[str, FeatureCache] = {}
        self.decoder = AttentionLSTMDecoder(
            vocab_size, embed_dim, hidden_dim, self.encoder.out_dim, attention=score, attention_dim=attention_dim,
            dropout=dropout, gate=gate, deep_output=deep_output, hard=attention == "hard",
            hard_eval_mode=hard_eval_mode, mix_soft_prob=mix_soft_prob,
        )
        self.register_buffer("reward_baseline", torch.zeros(()))  # hard attention's moving average of r
        self.register_buffer("baseline_ready", torch.zeros((), dtype=torch.bool))
        self.metrics = nn.ModuleDict({f"{split}_": caption_metric_collection(prefix=f"{split}/")
                                      for split in EVAL_SPLITS})
        self.correctness = nn.ModuleDict({f"{split}_": MeanMetric() for split in EVAL_SPLITS})
        self.correctness_uniform = nn.ModuleDict({f"{split}_": MeanMetric() for split in EVAL_SPLITS})
        self.entropy = nn.ModuleDict({f"{split}_": MeanMetric() for split in EVAL_SPLITS})
        self._figure_batch: dict[str, Any] | None = None

    # --- model -------------------------------------------------------------------------------------------

    @property
    def pad_id(self) -> int:
        return Vocabulary.PAD_ID

    def encode(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> memory [B, N, D]."""
        if self.normalize:
            images = (images - self.image_mean) / self.image_std
        return self.encoder(images)

    def memory(self, batch: dict[str, Any], split: str) -> tuple[Tensor, Tensor | None]:
        """What the decoder attends over: the batch's feature grid [B, N, D] (from the split's feature cache when
        caching, else encoded now) and its mask [B, N] (None: every position is real)."""
        if not self.hparams.cache_features:
            return self.encode(batch["image"]), None
        return self.cached_features(split, batch["image_index"]), None

    def cached_features(self, split: str, index: Tensor) -> Tensor:
        """Rows ``index`` [B] of the split's feature cache, built on first use by running
        ``feature_cache_encoder()`` once over ``feature_cache_loader(split)``."""
        if split not in self._feature_caches:
            loader = self.feature_cache_loader(split)
            self._feature_caches[split] = FeatureCache.build(self.feature_cache_encoder(), loader, len(loader.dataset),
                                                             self.device, progress=self.trainer.is_global_zero,
                                                             split=split)
        return self._feature_caches[split].lookup(index, self.device)

    def feature_cache_encoder(self) -> nn.Module:
        """The frozen module whose outputs are cached: images [B, 3, H, W] -> grids [B, N, D]."""
        return NormalizedEncoder(self.encoder, self.image_mean, self.image_std, self.normalize)

    def feature_cache_loader(self, split: str) -> DataLoader:
        """Every item of a split once, as {image, index} batches."""
        return self.trainer.datamodule.image_loader(split)

    def forward(self, images: Tensor, tokens: Tensor) -> DecoderOutput:
        """Teacher forcing: images [B, 3, H, W], tokens [B, L] ("<bos> .. <eos> <pad>..") -> outputs for L-1 steps."""
        return self.decoder(self.encode(images), None, tokens[:, :-1])

    @torch.no_grad()
    def decode(self, memory: Tensor, mask: Tensor | None, beam_size: int | None = None) -> Decoded:
        """memory [B, N, D] (+ mask [B, N]) -> each sample's caption by batched beam search (call in eval mode)."""
        return beam_search(self.decoder, memory, mask, Vocabulary.BOS_ID, Vocabulary.EOS_ID,
                           beam_size=beam_size or self.hparams.beam_size, max_len=self.hparams.max_decode_len,
                           length_penalty=self.hparams.length_penalty)

    def generate(self, images: Tensor, beam_size: int | None = None) -> Decoded:
        """images [B, 3, H, W] -> the decoded caption of each (batched beam search; call in eval mode)."""
        return self.decode(self.encode(images), None, beam_size)

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, list]:
        """image [B, 3, H, W] in [0, 1] -> {"captions": B strings, "attention": B tensors [L_b, N]} (beam search)."""
        return self.decode_captions(self.encode(batch["image"]), None)

    def decode_captions(self, memory: Tensor, mask: Tensor | None) -> dict[str, list]:
        """memory [B, N, D] (+ mask [B, N]) -> the beam-searched caption of each and each word's attention."""
        hypotheses = self.decode(memory, mask)
        return {"captions": [self.vocabulary.decode(h.tokens) for h in hypotheses],
                "attention": [h.attention for h in hypotheses]}

    # --- losses ------------------------------------------------------------------------------------------

    def _losses(self, out: DecoderOutput, tokens: Tensor, smoothing: float) -> dict[str, Tensor]:
        targets = tokens[:, 1:]                                                            # [B, T]
        real = targets != self.pad_id                                                      # [B, T]
        logits = out.logits.float().transpose(1, 2)                                        # [B, V, T]
        nll = F.cross_entropy(logits, targets, reduction="none", ignore_index=self.pad_id)  # [B, T]
        words = real.sum().clamp(min=1)
        losses = {"nll": nll.sum() / words}
        word_loss = losses["nll"]
        if smoothing > 0:
            word_loss = F.cross_entropy(logits, targets, ignore_index=self.pad_id, label_smoothing=smoothing)
        positions = out.attention.size(-1)
        losses["doubly_stochastic"] = doubly_stochastic_penalty(out.attention.float(), real,
                                                                self.hparams.alpha_c) / positions
        losses["loss"] = word_loss + losses["doubly_stochastic"]
        if out.log_probs is not None and self.training:
            losses.update(self._reinforce(nll.detach(), real, out.log_probs.float(), out.entropy.float()))
            losses["loss"] = (losses["loss"] + self.hparams.reinforce_weight * losses["reinforce"]
                              - self.hparams.entropy_weight * losses["attention_entropy"])
        return losses

    def _reinforce(self, nll: Tensor, real: Tensor, log_probs: Tensor, entropy: Tensor) -> dict[str, Tensor]:
        """REINFORCE for the sampled locations: nll, log_probs, entropy [B, T]; real [B, T] bool."""
        real_f = real.float()
        # the paper's signal is log p(caption | s); its per-word mean keeps the scale independent of caption length
        # (the summed form diverged here: REINFORCE terms of -60 within 200 steps)
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

    # --- steps -------------------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        memory, mask = self.memory(batch, "train")
        out = self.decoder(memory, mask, batch["tokens"][:, :-1])
        losses = self._losses(out, batch["tokens"], self.hparams.label_smoothing)
        batch_size = len(batch["tokens"])
        self.log("train/loss", losses["loss"], prog_bar=True, on_step=True, on_epoch=True, batch_size=batch_size)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, on_step=True, on_epoch=True,
                      batch_size=batch_size)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val", keep_figure=batch_idx == 0)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test", keep_figure=False)

    def _evaluate(self, batch: dict[str, Any], split: str, keep_figure: bool) -> None:
        memory, mask = self.memory(batch, split)                                           # [B, N, D], [B, N]
        out = self.decoder(memory, mask, batch["tokens"][:, :-1])
        losses = self._losses(out, batch["tokens"], smoothing=0.0)
        self.log(f"{split}/loss", losses["nll"], prog_bar=split == "val", sync_dist=True,
                 batch_size=len(batch["tokens"]))
        decoded = self.decode(memory, mask)
        hypotheses = list(decoded)
        texts = [self.vocabulary.decode(h.tokens) for h in hypotheses]
        self.metrics[f"{split}_"].update(texts, batch["references"])
        words = decoded.tokens.to(self.device)                                            # [B, L], -1 padded
        attention = decoded.attention.to(self.device)                                      # [B, L, N]
        word_mask = words >= 0
        if word_mask.any():
            self.entropy[f"{split}_"].update(attention_entropy(attention, word_mask))
        mass, uniform = self._grounded_mass(batch, words, attention)
        if mass is not None and mass.numel():
            self.correctness[f"{split}_"].update(mass)
            self.correctness_uniform[f"{split}_"].update(uniform)
        if keep_figure:
            count = self.hparams.num_figure_samples
            self._figure_batch = {"image": batch["image"][:count].float().cpu(), "texts": texts[:count],
                                  "attention": [h.attention for h in hypotheses[:count]],
                                  "references": batch["references"][:count]}

    def _grounded_mass(self, batch: dict[str, Any], words: Tensor, attention: Tensor
                       ) -> tuple[Tensor | None, Tensor | None]:
        """Attention correctness of the words that name an object (boxes known: generated scenes), and the mass a
        uniform map puts there; (None, None) when the data has no boxes."""
        if "boxes" not in batch:
            return None, None
        grounding = word_object_grounding(words, batch["object_words"])                   # [B, L, K]
        mass, uniform, _ = grounded_attention_mass(attention, grounding, batch["boxes"], self.grid)
        return mass, uniform

    def _log_eval_metrics(self, split: str) -> None:
        key = f"{split}_"
        values = self.metrics[key].compute()
        self.metrics[key].reset()
        for name, metric in (("attention_entropy", self.entropy), ("attention_correctness", self.correctness),
                             ("attention_correctness_uniform", self.correctness_uniform)):
            if updated_on_any_rank(self, metric[key]):  # only what was measured (no boxes on real data)
                values[f"{split}/{name}"] = compute_quietly(metric[key])
            metric[key].reset()
        for name, value in values.items():
            self.log(name, value.float(), prog_bar=name in ("val/cider", "val/bleu4"), sync_dist=False)

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")
        if self._figure_batch is not None and not self.trainer.sanity_checking:
            self._log_figures(self._figure_batch)
        self._figure_batch = None

    def _log_figures(self, sample: dict[str, Any]) -> None:
        """The per-word attention figure and the predictions table of the first validation batch."""
        log_figure(self.trainer, "val/attention", attention_caption_figure(
            sample["image"], sample["texts"], sample["attention"], self.grid),
            caption="generated caption; attention of every word over the image")
        log_table(self.trainer, "val/captions", ["image", "generated", "references"],
                  caption_table_rows(sample["image"], sample["texts"], sample["references"]))

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    # --- checkpoints and optimiser -------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        save_vocabularies(checkpoint, vocabulary=self.vocabulary)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        (self.vocabulary,) = load_vocabularies(checkpoint, "vocabulary")

    def configure_optimizers(self) -> dict[str, Any]:
        encoder = [p for p in self.encoder.parameters() if p.requires_grad]
        return adamw_one_cycle(
            self,
            [{"params": [p for p in self.decoder.parameters() if p.requires_grad]},
             {"params": encoder, "lr_scale": self.hparams.encoder_lr_scale}],
            lr=self.hparams.lr, weight_decay=self.hparams.weight_decay,
            warmup_fraction=self.hparams.warmup_fraction,
        )


class NormalizedEncoder(nn.Module):
    """The captioner's encoder with its input normalisation, as one frozen module for ``FeatureCache``."""

    def __init__(self, encoder: nn.Module, mean: Tensor, std: Tensor, normalize: bool) -> None:
        super().__init__()
        self.encoder, self.normalize = encoder, normalize
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        """images [B, 3, H, W] in [0, 1] -> [B, N, D]."""
        return self.encoder((images - self.mean) / self.std if self.normalize else images)
