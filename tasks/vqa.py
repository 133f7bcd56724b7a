"""Visual question answering with stacked attention networks (Yang et al. 2016).

image -> feature grid (shared encoders) -> v_I = tanh(W v) [B, N, d]
question -> LSTM over packed tokens -> u_0 [B, d]
k hops of attention, each with its own weights (modules.stacked_attention) -> u_k -> answer classifier.
``hops=0`` is the no-attention baseline (mean-pooled image + question).

Generated Sort-of-CLEVR (default): cross-entropy over the 12 answers; accuracy overall and for non-relational and
relational questions; attention correctness per hop (mass on the boxes of the objects the question is about,
next to a uniform map's). VQA v2: soft-score targets (answers outside the top-K are counted and left out of the
loss) and the official VQA accuracy, overall and per answer type.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MeanMetric

from datamodules.vqa import KIND_IDS, QUESTION_TYPES
from figures.hops import hop_attention_figure
from figures.publish import log_figure
from metrics.attention_correctness import box_cell_cover
from metrics.distributed import compute_quietly, updated_on_any_rank
from metrics.grouped_mean import GroupedMean
from metrics.per_split import ALL_SPLITS, PerSplit
from metrics.vqa_accuracy import VQAAccuracy
from modules.encoders import TextEncoder, measure_grid
from modules.stacked_attention import StackedAttention
from tasks.base import Task
from tasks.image_encoder import build_image_encoder
from text.vocabulary import Vocabulary

KINDS = tuple(KIND_IDS)                      # non_relational, relational (the batch's "kind" ids)
GROUPS = (("kind", KINDS), ("question_type", QUESTION_TYPES))   # Sort-of-CLEVR: accuracy per group of each


def grid_coordinates(grid: tuple[int, int]) -> Tensor:
    """(x, y) in [-1, 1] of the cells of an (h, w) grid, in row-major order -> [h * w, 2]."""
    height, width = grid
    y, x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


class StackedAttentionVQA(Task):
    """SAN: see the module docstring."""

    vocabulary_names = ("question_vocabulary",)

    def __init__(self, *, question_vocabulary: Vocabulary | None = None, question_vocab_size: int | None = None,
                 answers: list[str], image_size: int, encoder: dict[str, Any], hops: int, dim: int,
                 attention_dim: int, embed_dim: int, coordinates: bool, question_bidirectional: bool,
                 question_norm: bool, score: str, readout: str, classifier_hidden: int, attention_supervision: float,
                 dropout: float, lr: float, weight_decay: float, warmup_fraction: float, channels_last: bool,
                 num_figure_samples: int) -> None:
        """
        Args:
            question_vocabulary: the question tokeniser (the datamodule's); saved in checkpoints.
            question_vocab_size: taken from the vocabulary when given (kept to rebuild from a checkpoint).
            answers: the answer classes (the datamodule's).
            image_size: input size (the encoder's grid is measured from it).
            encoder: the image encoder's config (``_target_`` and its arguments: ``configs/model/encoder/``).
            hops: attention layers (0: the no-attention baseline).
            dim: d, the joint size of image positions and the question vector.
            attention_dim: width of each hop's attention.
            embed_dim: question word embedding size.
            coordinates: append each grid cell's (x, y) in [-1, 1] to its features before the projection, so an
                attended sum still says where it looked (Santoro et al. 2017 tag CNN cells the same way).
            question_bidirectional: encode the question with a bidirectional LSTM (d / 2 units each way, final
                states concatenated) instead of the paper's one-way LSTM (d units). The one-way final state must
                carry the colour word of "is the red object on the left or right of the image" across the seven
                words after it; the backward state has read it two words before its end.
            question_norm: LayerNorm on the question vector (the LSTM's final state starts about 10x smaller
                than the image positions, so the question barely moves the attention early in training).
            score: each hop's attention score, "additive" (the paper's) or "multiplicative".
            readout: what the answer classifier reads: "sum" (the paper's u_k) or "concat" (the question vector and
                every hop's context side by side, so one hop's attended position is not blurred by another's).
            classifier_hidden: 0: the paper's answer classifier, one linear layer on u_k; > 0: a hidden layer of
                this width (ReLU) before it, so the answer can depend on the question type and the attended
                content jointly (u_k is their sum; a linear layer can only add their evidence).
            attention_supervision: lambda >= 0 of a supervised-attention term in the training loss (Liu et al.
                2017's idea for captioning): lambda * mean over non-relational questions of -log(the first hop's
                attention mass on the cells of the object the question names). Relational questions and later
                hops are left free: those answers depend on other objects too (a count cannot be read from a
                normalised average over one object), and supervising every hop cost the relational questions
                accuracy (benchmarks/results/vqa_attention_supervision.md). 0: the paper's unsupervised SAN. Needs the
                named objects' boxes, so generated Sort-of-CLEVR only (VQA v2 has none: an error says so).
            dropout: before the answer classifier.
            lr, weight_decay, warmup_fraction: AdamW with a one-cycle schedule.
            channels_last: NHWC memory format for the image encoder (with ``trainer.precision=bf16-mixed``, faster
                convolutions on CPUs with bf16 support and on tensor cores).
            num_figure_samples: validation questions shown with their per-hop maps each epoch.
        """
        super().__init__()
        if question_vocabulary is not None:
            question_vocab_size = len(question_vocabulary)
        if question_vocab_size is None or not answers:
            raise ValueError("StackedAttentionVQA needs the question vocabulary and the answer classes")
        if attention_supervision < 0:
            raise ValueError(f"model.attention_supervision must be >= 0, got {attention_supervision}")
        self.save_hyperparameters(ignore=["question_vocabulary"])
        self.question_vocabulary = question_vocabulary
        self.encoder = build_image_encoder(encoder)
        self.grid = measure_grid(self.encoder, image_size)
        self.image_proj = nn.Linear(self.encoder.out_dim + 2 * coordinates, dim)
        if coordinates:
            self.register_buffer("cell_coordinates", grid_coordinates(self.grid), persistent=False)   # [N, 2]
        if question_bidirectional and dim % 2:
            raise ValueError(f"model.question_bidirectional needs an even model.dim (d / 2 units per direction), "
                             f"got dim={dim}")
        self.question_encoder = TextEncoder(question_vocab_size, embed_dim, dim // 2 if question_bidirectional else dim,
                                            rnn="lstm", bidirectional=question_bidirectional, pad_id=Vocabulary.PAD_ID)
        self.question_norm = nn.LayerNorm(dim) if question_norm else nn.Identity()
        self.attention = StackedAttention(dim, hops, attention_dim, score, readout)
        readout_dim = self.attention.out_dim(dim)
        hidden = [nn.Linear(readout_dim, classifier_hidden), nn.ReLU(inplace=True)] if classifier_hidden > 0 else []
        self.classifier = nn.Sequential(nn.Dropout(dropout), *hidden,
                                        nn.Linear(classifier_hidden or readout_dim, len(answers)))
        self.accuracy = PerSplit(lambda: MeanMetric(nan_strategy="disable"), ALL_SPLITS)
        self.group_accuracy = PerSplit(
            lambda: nn.ModuleDict({key: GroupedMean(len(names)) for key, names in GROUPS}), ALL_SPLITS)
        self.correctness = PerSplit(lambda: nn.ModuleList([MeanMetric() for _ in range(hops)]))   # one per hop
        self.correctness_uniform = PerSplit(MeanMetric)
        self.vqa_accuracy = PerSplit(VQAAccuracy)
        if channels_last:
            # here, not in a fit hook: DDP must wrap parameters already in their final layout
            self.to(memory_format=torch.channels_last)

    def forward(self, images: Tensor, question: Tensor, question_lengths: Tensor) -> tuple[Tensor, list[Tensor]]:
        """images [B, 3, H, W] in [0, 1], question [B, L] ids, lengths [B] -> (logits [B, K], hop maps k x [B, N])."""
        if self.hparams.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.encoder(images)                                                    # [B, N, C]
        if self.hparams.coordinates:
            where = self.cell_coordinates.to(features.dtype).expand(features.size(0), -1, -1)   # [B, N, 2]
            features = torch.cat([features, where], dim=-1)                                # [B, N, C + 2]
        image = torch.tanh(self.image_proj(features))                                      # [B, N, d]
        query = self.question_norm(self.question_encoder(question, question_lengths).final)   # [B, d]
        refined, maps = self.attention(image, query)                                       # [B, d]
        return self.classifier(refined), maps

    def _loss(self, logits: Tensor, batch: dict[str, Any]) -> Tensor:
        if "targets" in batch:  # VQA v2 soft scores; rows with no top-K answer are left out
            targets = batch["targets"]                                                      # [B, K]
            keep = targets.sum(dim=-1) > 0
            if not keep.any():
                return logits.sum() * 0.0
            loss = F.binary_cross_entropy_with_logits(logits[keep].float(), targets[keep], reduction="mean")
            return loss * targets.size(-1)
        return F.cross_entropy(logits.float(), batch["answer"])

    def _step(self, batch: dict[str, Any], split: str) -> tuple[Tensor, Tensor, list[Tensor]]:
        logits, maps = self(batch["image"], batch["question"], batch["question_lengths"])
        loss = self._loss(logits, batch)
        predicted = logits.argmax(dim=-1)                                                   # [B]
        correct = (predicted == batch["answer"]).float()                  # [B] (an answer outside the top-K: -1)
        self.accuracy[split].update(correct)
        for key, _ in GROUPS:  # Sort-of-CLEVR only
            if key in batch:
                self.group_accuracy[split][key].update(correct, batch[key])
        if "human_answers" in batch and split != "train":  # VQA v2: the official accuracy against 10 humans
            self.vqa_accuracy[split].update([self.hparams.answers[i] for i in predicted.tolist()],
                                                  batch["human_answers"], batch["answer_types"])
        on_step = split == "train"
        self.log(f"{split}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=on_step,
                 batch_size=len(predicted), sync_dist=not on_step)
        return loss, predicted, maps

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        loss, _, maps = self._step(batch, "train")
        weight = self.hparams.attention_supervision
        if weight > 0 and maps:
            supervision = self._attention_supervision(batch, maps)
            self.log("train/attention_supervision", supervision, on_step=True, on_epoch=True,
                     batch_size=len(maps[0]))
            loss = loss + weight * supervision
        return loss

    def _attention_supervision(self, batch: dict[str, Any], maps: list[Tensor]) -> Tensor:
        """Mean over non-relational questions of -log(the first hop's attention mass on the named object's cells)."""
        if "about_boxes" not in batch or "kind" not in batch:
            raise ValueError("model.attention_supervision > 0 needs the boxes of the objects each question is "
                             "about, which only the generated Sort-of-CLEVR data has (data.source=sort_of_clevr); "
                             "set model.attention_supervision=0 for this data")
        named = batch["kind"] == KINDS.index("non_relational")                              # [B]
        if not named.any():
            return maps[0].sum() * 0.0
        cover = self._about_cover(batch)[named]                                            # [S, N]
        mass = (maps[0][named].float() * cover).sum(-1)                                   # [S] first hop
        return -mass.clamp(min=1e-6).log().mean()

    def _about_cover(self, batch: dict[str, Any]) -> Tensor:
        """[B, N] in [0, 1]: how much of each grid cell the objects a question is about cover."""
        cover = box_cell_cover(batch["about_boxes"], self.grid)                            # [B, A, N]
        return (cover * batch["about_mask"].unsqueeze(-1).to(cover.dtype)).sum(1).clamp(max=1)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, predicted, maps = self._step(batch, "val")
        self._update_correctness(batch, maps, "val")
        if batch_idx == 0:
            count = self.hparams.num_figure_samples
            self.keep_figure_sample({"image": batch["image"][:count].float().cpu(),
                                     "questions": batch["question_text"][:count],
                                     "predicted": [self.hparams.answers[i] for i in predicted[:count].tolist()],
                                     "truth": batch["answer_text"][:count],
                                     "maps": [m[:count].float().cpu() for m in maps]})

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        _, _, maps = self._step(batch, "test")
        self._update_correctness(batch, maps, "test")

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        """image [B, 3, H, W] in [0, 1], question [B, L] + lengths [B] -> answer probabilities [B, K] and the
        attention of every hop (k x [B, N])."""
        logits, maps = self(batch["image"], batch["question"], batch["question_lengths"])
        return {"probabilities": logits.float().softmax(dim=-1), "maps": maps}

    def _update_correctness(self, batch: dict[str, Any], maps: list[Tensor], split: str) -> None:
        """Attention mass of every hop on the boxes of the objects the question is about, and a uniform map's."""
        if "about_boxes" not in batch or not maps:
            return
        cover = self._about_cover(batch)                                                   # [B, N]
        for hop, weights in enumerate(maps):
            self.correctness[split][hop].update((weights.float() * cover).sum(-1))
        self.correctness_uniform[split].update(cover.mean(-1))

    def log_split_end(self, split: str) -> None:
        values = {}
        metric = self.accuracy[split]
        if updated_on_any_rank(self, metric):
            values[f"{split}/acc"] = compute_quietly(metric)
        metric.reset()
        for key, names in GROUPS:
            metric = self.group_accuracy[split][key]
            if updated_on_any_rank(self, metric):
                means, counts = compute_quietly(metric)                                    # [G], [G] all ranks
                present = counts.gt(0).tolist()                                            # one host sync
                values.update({f"{split}/acc_{name}": means[g] for g, name in enumerate(names) if present[g]})
            metric.reset()
        if split != "train" and self.hparams.hops and updated_on_any_rank(self, self.correctness[split][0]):
            for hop, metric in enumerate(self.correctness[split]):
                values[f"{split}/attention_correctness_hop{hop + 1}"] = compute_quietly(metric)
                metric.reset()
            values[f"{split}/attention_correctness_uniform"] = compute_quietly(self.correctness_uniform[split])
            self.correctness_uniform[split].reset()
        if split != "train" and updated_on_any_rank(self, self.vqa_accuracy[split]):
            for name, value in compute_quietly(self.vqa_accuracy[split]).items():
                key = "vqa_acc" if name == "overall" else "vqa_acc_" + name.replace("/", "_")
                values[f"{split}/{key}"] = value
            self.vqa_accuracy[split].reset()
        for name, value in values.items():
            self.log(name, value.float(), prog_bar=name == "val/acc", sync_dist=False)

    def on_train_epoch_end(self) -> None:
        self.log_split_end("train")

    def log_figures(self, sample: dict[str, Any]) -> None:
        if self.hparams.hops:
            log_figure(self.trainer, "val/hops", hop_attention_figure(
                sample["image"], sample["questions"], sample["predicted"], sample["truth"], sample["maps"],
                self.grid), caption="question; predicted / true answer; attention of every hop")
