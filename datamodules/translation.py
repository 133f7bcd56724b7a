"""Translation data: generated number phrases (default, no download) or a parallel corpus from disk.

Sources:
    ``numbers``: a number written out in one language -> the same number in another (``num2words``; English ->
        French by default, any pair it supports), numbers disjoint across train/val/test, deterministic by seed
        (``datamodules.number_pairs``).
    ``files``: ``<root>/{train,val,test}.<lang>`` one sentence a line (Multi30k / IWSLT layout).
    ``tsv``: ``<root>/{train,val,test}.tsv`` with ``source<TAB>target`` lines.
    ``hub``: Multi30k through Hugging Face ``datasets`` (online only).
(``datamodules.parallel_text`` reads the last three, with counts of what it drops.)

Tokenisers (HF ``tokenizers``, word-level or BPE) are trained on the TRAINING split only, then handed to the model
(``model.source_vocabulary: ???``), which saves them in its checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.number_pairs import make_number_splits
from datamodules.parallel_text import load_multi30k_from_hub, load_parallel_split
from datamodules.sampling import SplitLoaders, make_dataloader, split_index
from text.vocabulary import Vocabulary, build_vocabulary

log = logging.getLogger(__name__)

SOURCES = ("numbers", "files", "tsv", "hub")
SPLITS = ("train", "val", "test")


class SentencePairs(Dataset):
    """Pre-tokenised sentence pairs: item -> {source ids, target ids, source text, target text}."""

    def __init__(self, sources: list[str], targets: list[str], source_vocabulary: Vocabulary,
                 target_vocabulary: Vocabulary) -> None:
        self.sources, self.targets = sources, targets
        self.source_ids = [source_vocabulary.encode(s) for s in sources]
        self.target_ids = [target_vocabulary.encode(t) for t in targets]

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        i = split_index(idx, len(self.sources))[1]
        return {"source_ids": self.source_ids[i], "target_ids": self.target_ids[i],
                "source": self.sources[i], "target": self.targets[i]}


def pad_ids(rows: list[list[int]], max_tokens: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Id lists -> "<bos> ids <eos> <pad>.." [B, L] long and lengths [B] (incl. bos/eos); ids cut to max_tokens."""
    rows = [row[:max_tokens] if max_tokens else row for row in rows]
    lengths = torch.tensor([len(row) + 2 for row in rows], dtype=torch.long)
    tokens = torch.full((len(rows), int(lengths.max())), Vocabulary.PAD_ID, dtype=torch.long)
    for b, row in enumerate(rows):
        tokens[b, : len(row) + 2] = torch.tensor([Vocabulary.BOS_ID, *row, Vocabulary.EOS_ID])
    return tokens, lengths


class TranslationCollate:
    """Items -> source [B, S], source_lengths [B], target [B, T] (token ids) + sources_text and references."""

    def __init__(self, max_tokens: int | None) -> None:
        self.max_tokens = max_tokens

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        source, source_lengths = pad_ids([item["source_ids"] for item in items], self.max_tokens)
        target, _ = pad_ids([item["target_ids"] for item in items], self.max_tokens)
        return {"source": source, "source_lengths": source_lengths, "target": target,
                "sources_text": [item["source"] for item in items],
                "references": [item["target"] for item in items]}


class TranslationDataModule(SplitLoaders, pl.LightningDataModule):
    """Sentence pairs for ``tasks.nmt``; see the module docstring for the sources.

    Args:
        source: numbers (generated, default) | files | tsv | hub.
        root: the corpus folder (files, tsv).
        source_lang, target_lang: language codes (numbers: any two num2words languages; files: the extensions).
        sizes: sentence pairs per split for the generated numbers.
        max_number: generated numbers are drawn from [0, max_number] (at most 10**7 - 1).
        forms: generated number forms, any of cardinal, ordinal, year (each pair one form, both sides alike).
        tokenizer: word | bpe.
        vocab_size: BPE vocabulary size (per language).
        min_count: word-level: words rarer than this in the training split map to <unk>.
        lowercase: lowercase all text (real corpora).
        max_tokens: training pairs with a side longer than this many words are filtered out (counted); model
            inputs are cut to this many tokens.
        batch_size, eval_batch_size, num_workers, seed: loading.
    """

    def __init__(self, *, source: str, root: str | None, source_lang: str, target_lang: str, sizes: dict[str, int],
                 max_number: int, forms: Sequence[str], tokenizer: str, vocab_size: int, min_count: int,
                 lowercase: bool, max_tokens: int | None, batch_size: int, eval_batch_size: int | None,
                 num_workers: int | str, seed: int) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(f"data.source={source!r} is not a known translation source; choose one of "
                             f"{list(SOURCES)}")
        if source in ("files", "tsv") and not root:
            raise ValueError(f"data.source={source} needs data.root: the folder with train/val/test files")
        self.save_hyperparameters()
        self.sizes = dict(sizes)
        self.texts: dict[str, tuple[list[str], list[str]]] = {}
        self.datasets: dict[str, SentencePairs] = {}
        self._vocabularies: tuple[Vocabulary, Vocabulary] | None = None

    # --- what the model reads ------------------------------------------------------------------------------

    @property
    def source_vocabulary(self) -> Vocabulary:
        return self._build_vocabularies()[0]

    @property
    def target_vocabulary(self) -> Vocabulary:
        return self._build_vocabularies()[1]

    def adopt_vocabularies(self, vocabularies: dict[str, Vocabulary]) -> None:
        """Encode text with a checkpoint's tokenisers (eval.py) instead of ones trained on this data."""
        self._vocabularies = (vocabularies["source_vocabulary"], vocabularies["target_vocabulary"])

    def _build_vocabularies(self) -> tuple[Vocabulary, Vocabulary]:
        if self._vocabularies is None:
            hp = self.hparams
            sources, targets = self._texts("train")
            self._vocabularies = tuple(
                build_vocabulary(hp.tokenizer, texts, vocab_size=hp.vocab_size, min_count=hp.min_count,
                                 lowercase=hp.lowercase) for texts in (sources, targets))
            log.info("tokenisers (%s, trained on %d training pairs): %s %d, %s %d", hp.tokenizer, len(sources),
                     hp.source_lang, len(self._vocabularies[0]), hp.target_lang, len(self._vocabularies[1]))
        return self._vocabularies

    # --- text ----------------------------------------------------------------------------------------------

    def _texts(self, split: str) -> tuple[list[str], list[str]]:
        if not self.texts:
            self.texts = self._load_all()
        return self.texts[split]

    def _load_all(self) -> dict[str, tuple[list[str], list[str]]]:
        hp = self.hparams
        if hp.source == "numbers":
            return make_number_splits(hp.source_lang, hp.target_lang, sizes=self.sizes, max_number=hp.max_number,
                                      seed=hp.seed, forms=tuple(hp.forms))
        texts = {}
        for split in SPLITS:
            if hp.source == "hub":
                sources, targets, counts = load_multi30k_from_hub(
                    split, hp.source_lang, hp.target_lang, lowercase=hp.lowercase,
                    max_tokens=hp.max_tokens if split == "train" else None)
            else:
                sources, targets, counts = load_parallel_split(
                    Path(hp.root).expanduser(), split, hp.source_lang, hp.target_lang,
                    layout="tsv" if hp.source == "tsv" else "files", lowercase=hp.lowercase,
                    max_tokens=hp.max_tokens if split == "train" else None)
            dropped = {what: count for what, count in counts.items() if count}
            if dropped:
                log.warning("translation %s/%s: dropped %s", hp.source, split,
                            ", ".join(f"{k} {v}" for k, v in dropped.items()))
            texts[split] = (sources, targets)
        return texts

    def _prepare(self, split: str) -> SentencePairs:
        if split not in self.datasets:
            sources, targets = self._texts(split)
            self.datasets[split] = SentencePairs(sources, targets, self.source_vocabulary, self.target_vocabulary)
            log.info("translation %s/%s: %d pairs", self.hparams.source, split, len(sources))
        return self.datasets[split]

    # --- loaders -------------------------------------------------------------------------------------------

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self._prepare(split)
        batch_size = self.hparams.batch_size if shuffle else (self.hparams.eval_batch_size or self.hparams.batch_size)
        return make_dataloader(dataset, batch_size=batch_size, shuffle=shuffle, seed=self.hparams.seed,
                               num_workers=self.hparams.num_workers, trainer=self.trainer,
                               collate_fn=TranslationCollate(self.hparams.max_tokens))
