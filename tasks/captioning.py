"""Image captioning with soft or hard attention: Show, Attend and Tell (Xu et al. 2015).

image [B, 3, H, W] -> encoder -> feature grid memory [B, N, D] -> attention LSTM decoder -> words.

Losses, decoding and caption metrics are the captioner's (``tasks.captioner``). Attention correctness here is
spatial: the attention mass of each word that names an object inside that object's box (generated scenes).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.utils.data import DataLoader

from figures.captions import attention_caption_figure, caption_table_rows
from figures.publish import log_figure, log_table
from metrics.attention_correctness import grounded_attention_mass, word_object_grounding
from modules.beam_search import Decoded
from modules.decoders import DecoderOutput
from modules.encoders import measure_grid
from tasks.captioner import Captioner


class ImageCaptioner(Captioner):
    """Show, Attend and Tell over an image's feature grid; the arguments are ``tasks.captioner.Captioner``'s."""

    def __init__(self, **captioner: Any) -> None:
        super().__init__(**captioner)
        self.grid = measure_grid(self.encoder, self.hparams.image_size)                   # (h, w)

    def memory(self, batch: dict[str, Any], split: str) -> tuple[Tensor, Tensor | None]:
        """The batch's feature grid [B, N, D] (from the split's feature cache when caching, else encoded now);
        every position is real (mask None)."""
        if self.hparams.cache_features:
            return self.cached_features(split, batch["image_index"]), None
        return self.encoder(batch["image"]), None

    def feature_cache_encoder(self) -> nn.Module:
        return self.encoder                                                # images [B, 3, H, W] -> [B, N, D]

    def feature_cache_loader(self, split: str) -> DataLoader:
        return self.trainer.datamodule.image_loader(split)

    def forward(self, images: Tensor, tokens: Tensor) -> DecoderOutput:
        """Teacher forcing: images [B, 3, H, W] in [0, 1], tokens [B, L] ("<bos> .. <eos> <pad>..") -> outputs
        for L-1 steps."""
        return self.decoder(self.encoder(images), None, tokens[:, :-1])

    def generate(self, images: Tensor, beam_size: int | None = None) -> Decoded:
        """images [B, 3, H, W] -> the decoded caption of each (batched beam search; call in eval mode)."""
        return self.decode(self.encoder(images), None, beam_size=beam_size)

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, list]:
        """image [B, 3, H, W] in [0, 1] -> {"captions": B strings, "attention": B tensors [L_b, N]} (beam search)."""
        return self.decode_captions(self.encoder(batch["image"]), None)

    def grounded_mass(self, batch: dict[str, Any], words: Tensor, attention: Tensor
                      ) -> tuple[Tensor | None, Tensor | None]:
        """Mass inside the box of the object each naming word names (boxes known: generated scenes)."""
        if "boxes" not in batch:
            return None, None
        grounding = word_object_grounding(words, batch["object_words"])                   # [B, L, K]
        mass, uniform, _ = grounded_attention_mass(attention, grounding, batch["boxes"], self.grid)
        return mass, uniform

    def figure_sample(self, batch: dict[str, Any], decoded: Decoded, texts: list[str]) -> dict[str, Any]:
        count = self.hparams.num_figure_samples
        return {"image": batch["image"][:count].float().cpu(), "texts": texts[:count],
                "attention": [h.attention for h in decoded[:count]], "references": batch["references"][:count]}

    def log_figures(self, sample: dict[str, Any]) -> None:
        """Every word's attention over the image, and the predictions table."""
        log_figure(self.trainer, "val/attention", attention_caption_figure(
            sample["image"], sample["texts"], sample["attention"], self.grid),
            caption="generated caption; attention of every word over the image")
        log_table(self.trainer, "val/captions", ["image", "generated", "references"],
                  caption_table_rows(sample["image"], sample["texts"], sample["references"]))
