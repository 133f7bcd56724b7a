"""Image captioning data: generated scenes (default, no download) or a Karpathy split of COCO / Flickr8k / 30k.

Sources:
    ``scenes``: 1-3 shapes of several colours and sizes on a dark canvas (``datamodules.synthetic``), five
        reference captions each that name them and their spatial relations, and the box of every object (used
        to score where the model attends). Deterministic per (seed, split, index); rendered once at setup.
    ``karpathy``: ``<root>/<annotations>`` (``dataset_coco.json``, ``dataset_flickr8k.json``,
        ``dataset_flickr30k.json``) and the images under ``root`` (see ``datamodules.karpathy``); ``restval``
        joins train when ``restval_in_train``.

The vocabulary (HF ``tokenizers``, words seen at least ``min_word_count`` times in the TRAINING captions) is
built on first use and handed to the model (``model.vocabulary: ???``), which saves it in its checkpoints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from datamodules.caption_corpora import ImageFileCaptionCorpus, SceneCaptionCorpus
from datamodules.caption_datasets import (
    CaptionCollate,
    CaptionCorpus,
    CaptionImages,
    CaptionPairs,
    collate_images_with_index,
)
from datamodules.karpathy import load_karpathy_split
from datamodules.sampling import SplitLoaders, make_dataloader, resolve_num_workers
from datamodules.synthetic.caption_scenes import CaptionScenes
from text.vocabulary import AdoptsVocabulary, Vocabulary

log = logging.getLogger(__name__)

SOURCES = ("scenes", "karpathy")


class CaptionDataModule(AdoptsVocabulary, SplitLoaders, pl.LightningDataModule):
    """Captioned images for ``tasks.captioning``; see the module docstring for the sources.

    Args:
        source: "scenes" (generated, default) or "karpathy" (real JSON + images under ``root``).
        root: the dataset folder (karpathy).
        annotations: the Karpathy JSON file name (or path) relative to ``root``.
        images_dir: folder of the images relative to ``root`` (karpathy; None: COCO's ``filepath`` of each
            entry, or the usual Flickr folder names).
        image_size: square input size (scenes: canvas size; real: resize + centre crop).
        num_images: images per split for the generated scenes {train, val, test}.
        min_objects, max_objects: objects per generated scene.
        min_word_count: words rarer than this in the training captions map to <unk>.
        max_caption_words: longer captions are truncated (counted in the log).
        restval_in_train: karpathy: the ``restval`` images join the training split.
        skip_bad_images: karpathy: skip (and count) listed images that are missing or unreadable instead of
            stopping with an error naming them.
        batch_size: training batch (per process); eval_batch_size for val/test (default: batch_size).
        num_workers: DataLoader workers, or "auto" (0 on the CPU, several per GPU).
        seed: generation and shuffling seed.
    """

    def __init__(self, *, source: str, root: str | None, annotations: str, images_dir: str | None, image_size: int,
                 num_images: dict[str, int], min_objects: int, max_objects: int, min_word_count: int,
                 max_caption_words: int | None, restval_in_train: bool, skip_bad_images: bool, batch_size: int,
                 eval_batch_size: int | None, num_workers: int | str, seed: int) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source={source!r} is not a known caption source; choose one of {list(SOURCES)}")
        if source == "karpathy" and not root:
            raise ValueError("data.source=karpathy needs data.root: the folder with the Karpathy JSON and images")
        self.save_hyperparameters()
        self.num_images = dict(num_images)
        self.corpora: dict[str, CaptionCorpus] = {}
        self._vocabulary: Vocabulary | None = None

    # --- what the model reads (model args left ??? in the config) ------------------------------------------

    @property
    def vocabulary(self) -> Vocabulary:
        """The word vocabulary of the training captions (built on first use)."""
        if self._vocabulary is None:
            train = self._corpus("train")
            texts = (caption for i in range(len(train)) for caption in train.captions(i))
            self._vocabulary = Vocabulary.build(texts, min_count=self.hparams.min_word_count)
            log.info("caption vocabulary: %d words (min_word_count %d, incl. 4 special tokens)",
                     len(self._vocabulary), self.hparams.min_word_count)
        return self._vocabulary

    @property
    def image_size(self) -> int:
        return self.hparams.image_size

    # --- corpora ----------------------------------------------------------------------------------------

    def _corpus(self, split: str) -> CaptionCorpus:
        if split not in self.corpora:
            self.corpora[split] = self._build_corpus(split)
            log.info("captions %s/%s: %d images", self.hparams.source, split, len(self.corpora[split]))
        return self.corpora[split]

    def _build_corpus(self, split: str) -> CaptionCorpus:
        hp = self.hparams
        if hp.source == "scenes":
            scenes = CaptionScenes(self.num_images[split], image_size=hp.image_size, seed=hp.seed, split=split,
                                   min_objects=hp.min_objects, max_objects=hp.max_objects)
            return SceneCaptionCorpus(scenes)
        root = Path(hp.root).expanduser()
        records, counts = load_karpathy_split(
            root / hp.annotations, root, split, images_dir=hp.images_dir, restval_in_train=hp.restval_in_train,
            max_caption_words=hp.max_caption_words, check_images=True, skip_bad_images=hp.skip_bad_images,
        )
        dropped = {what: count for what, count in counts.items() if count}
        if dropped:
            log.warning("captions karpathy/%s: %s", split, ", ".join(f"{k} {v}" for k, v in dropped.items()))
        return ImageFileCaptionCorpus(records, hp.image_size)

    def _prepare(self, split: str) -> CaptionCorpus:
        return self._corpus(split)

    # --- loaders ----------------------------------------------------------------------------------------

    def image_loader(self, split: str) -> DataLoader:
        """Every image of a split once, in order, as {image [B, 3, H, W], index [B]} (for a feature cache; not
        sharded across DDP ranks: each rank caches the whole split)."""
        return DataLoader(CaptionImages(self._corpus(split)), batch_size=self.hparams.eval_batch_size or
                          self.hparams.batch_size, shuffle=False, num_workers=resolve_num_workers(
                              self.hparams.num_workers, self.trainer), collate_fn=collate_images_with_index)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        """Training: every (image, caption) pair; evaluation: one item per image with all its references."""
        if split == "train":
            dataset, batch_size = CaptionPairs(self._corpus("train")), self.hparams.batch_size
        else:
            dataset = CaptionImages(self._corpus(split))
            batch_size = self.hparams.eval_batch_size or self.hparams.batch_size
        return make_dataloader(
            dataset, batch_size=batch_size, shuffle=shuffle, seed=self.hparams.seed,
            num_workers=self.hparams.num_workers, trainer=self.trainer,
            collate_fn=CaptionCollate(self.vocabulary, self.hparams.max_caption_words),
        )
