"""Word-level and subword (BPE) vocabularies on Hugging Face ``tokenizers``, small enough to travel in a checkpoint.

:class:`Vocabulary` wraps a :class:`tokenizers.Tokenizer` and fixes the ids of four special tokens:
``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3. Three ways to build one (pass the training split only):

- :meth:`Vocabulary.build` -- word level, NFKC (+ optional lowercasing). With ``split_punctuation=True`` (the
  default, used by captioning) a ``Whitespace`` pre-tokenizer splits words from punctuation, so decoding joins
  ``l ' homme ,``; with ``split_punctuation=False`` (translation) a ``WhitespaceSplit`` pre-tokenizer keeps
  punctuation attached (``l'homme,`` is one word), so decoding -- tokens joined by single spaces -- gives back the
  normalised text exactly, whitespace runs collapsed to one space.
- :meth:`Vocabulary.build_bpe` -- byte-pair encoding (``models.BPE``), NFKC (+ optional lowercasing), whitespace
  runs collapsed and the ends stripped, then a ``Metaspace`` pre-tokenizer/decoder pair (SentencePiece style: a
  piece that starts a word carries ``▁``, e.g. ``▁vingt``), so decoding gives back the normalised text exactly:
  detokenised output, ready for sacreBLEU's own tokenisation. Characters never seen in training (or cut by a small
  ``vocab_size``) encode to ``<unk>``; a run of them inside a word fuses into one ``<unk>``.
- :func:`build_vocabulary` -- ``"word"`` or ``"bpe"`` by name (a config choice), the word variant without
  punctuation splitting.

Any other tokenizer can be wrapped directly as long as its special ids are the fixed ones. Decoding uses the
tokenizer's decoder when it has one and joins tokens with spaces otherwise.

Persistence is the tokenizer's own JSON: ``vocab.to_json()`` is a plain string a LightningModule can put in its
checkpoint dict (``on_save_checkpoint``) and ``Vocabulary.from_json(s)`` restores it exactly, normaliser,
pre-tokenizer and decoder included, so a checkpoint turns raw text into ids and ids into text on its own.

The special strings are registered as special (added) tokens, as ``tokenizers`` does for its own models, so a
literal ``<unk>`` in a text (common in preprocessed NMT corpora) encodes to ``unk_id``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE, WordLevel

__all__ = ["VOCABULARY_KINDS", "Vocabulary", "build_vocabulary"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)  # index in this tuple == fixed id
_FIXED_IDS = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
_SPECIAL_SPLIT = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))
VOCABULARY_KINDS: tuple[str, ...] = ("word", "bpe")  # the names build_vocabulary accepts
_METASPACE = "\u2581"  # "▁", SentencePiece's word-start mark


def _normalizer(lowercase: bool, collapse_whitespace: bool = False) -> normalizers.Normalizer:
    """NFKC, then optional lowercasing, then (optionally) whitespace runs -> one space and the ends stripped."""
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    if collapse_whitespace:
        steps += [normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    return normalizers.Sequence(steps)


def _word_level_tokenizer(vocab: dict[str, int], lowercase: bool, split_punctuation: bool = True) -> Tokenizer:
    """A word-level tokenizer over ``vocab`` with the suite's normaliser, pre-tokenizer and special tokens.

    ``split_punctuation=True``: ``Whitespace`` (``\\w+|[^\\w\\s]+``, words and punctuation apart);
    ``False``: ``WhitespaceSplit`` (split on whitespace only, so ``l'homme,`` stays one word). No decoder:
    decoding joins tokens with single spaces.
    """
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = _normalizer(lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


def _bpe_tokenizer(lowercase: bool) -> Tokenizer:
    """An untrained BPE tokenizer: normaliser, ``Metaspace`` pre-tokenizer and the matching decoder."""
    tokenizer = Tokenizer(BPE(unk_token=UNK, fuse_unk=True))
    tokenizer.normalizer = _normalizer(lowercase, collapse_whitespace=True)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always", split=True)
    return tokenizer


def _checked_texts(texts: Iterable[str]) -> list[str]:
    """``texts`` as a list, every item checked to be a ``str`` (the error names the index)."""
    if isinstance(texts, str):
        raise TypeError("texts must be an iterable of strings, got a single str")
    corpus = list(texts)
    for i, text in enumerate(corpus):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return corpus


@contextmanager
def _serial_tokenizers() -> Iterator[None]:
    """Run ``tokenizers`` without its Rust thread pool inside the block (``TOKENIZERS_PARALLELISM=false``).

    Training single-threaded keeps the pool unused, so DataLoader workers forked afterwards inherit no Rust threads
    (the same fork-safety rule as :meth:`Vocabulary.encode_batch`) and the vocabulary does not depend on scheduling;
    the previous value of the variable is restored on exit. (Multi30k-sized corpora train in about 2 s.)
    """
    key = "TOKENIZERS_PARALLELISM"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _as_id_list(ids: Sequence[int] | torch.Tensor) -> list[int]:
    """``ids`` (a list or a 1-D tensor) as a list of Python ints."""
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"expected a 1-D tensor of ids, got shape {tuple(ids.shape)}")
        return [int(i) for i in ids.tolist()]
    return [int(i) for i in ids]


class Vocabulary:
    """Text <-> ids with fixed special ids; wraps a ``tokenizers.Tokenizer``.

    Args:
        tokenizer: any tokenizer whose vocabulary maps ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` to 0, 1, 2, 3.
            Usually made by :meth:`build` or :meth:`from_json`.

    Raises:
        ValueError: a special token is missing or has another id (the message names the token).
    """

    PAD, BOS, EOS, UNK = PAD, BOS, EOS, UNK
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3
    PAD_ID, BOS_ID, EOS_ID, UNK_ID = pad_id, bos_id, eos_id, unk_id  # the same, as class constants

    def __init__(self, tokenizer: Tokenizer) -> None:
        for expected, token in enumerate(SPECIAL_TOKENS):
            got = tokenizer.token_to_id(token)
            if got != expected:
                found = "is missing" if got is None else f"has id {got}"
                raise ValueError(
                    f"tokenizer special token {token!r} {found}, expected id {expected} "
                    f"(the fixed ids are {_FIXED_IDS})"
                )
        self.tokenizer = tokenizer

    # ---------------------------------------------------------------------------------------------- building

    @staticmethod
    def split_words(text: str, lowercase: bool = True, split_punctuation: bool = True) -> list[str]:
        """The words ``build`` counts in ``text``: exactly the pieces the built tokenizer encodes one id each."""
        probe = _word_level_tokenizer(dict(_FIXED_IDS), lowercase, split_punctuation)
        return Vocabulary._split(probe, text)

    @staticmethod
    def _split(tokenizer: Tokenizer, text: str) -> list[str]:
        """Split like ``tokenizer.encode``: special strings cut out first, then normalise and pre-tokenize."""
        words: list[str] = []
        for segment in _SPECIAL_SPLIT.split(text):  # special tokens match on the raw text, before normalising
            normalised = tokenizer.normalizer.normalize_str(segment)
            words.extend(piece for piece, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalised))
        return words

    @classmethod
    def build(
        cls,
        texts: Iterable[str],
        min_count: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
        split_punctuation: bool = True,
    ) -> Vocabulary:
        """Count the words of ``texts`` (pass the training split only) and keep the frequent ones.

        Args:
            texts: the corpus, one string per sentence/caption.
            min_count: keep words seen at least this many times (>= 1).
            max_size: cap on ``len(vocab)``, the 4 special tokens included (>= 4); the most frequent words win.
            lowercase: lowercase text before counting and encoding.
            split_punctuation: ``True`` (captioning): punctuation marks are words of their own, so
                ``"l'homme,"`` encodes as ``l ' homme ,`` and decodes as ``"l ' homme ,"``. ``False``
                (translation): split on whitespace only, so ``"l'homme,"`` is one word and decoding gives back
                the normalised text exactly (whitespace runs as one space), at the price of a larger vocabulary.

        Returns:
            A vocabulary whose word ids (from 4 on) follow count descending, then the word itself, so the same
            corpus gives the same ids whatever the order of its texts.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < len(SPECIAL_TOKENS):
            raise ValueError(f"max_size must be >= {len(SPECIAL_TOKENS)} (the special tokens), got {max_size}")
        probe = _word_level_tokenizer(dict(_FIXED_IDS), lowercase, split_punctuation)
        counts: Counter[str] = Counter()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
            counts.update(cls._split(probe, text))
        kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            kept = kept[: max_size - len(SPECIAL_TOKENS)]
        vocab = dict(_FIXED_IDS)
        vocab.update((w, len(SPECIAL_TOKENS) + i) for i, w in enumerate(kept))
        return cls(_word_level_tokenizer(vocab, lowercase, split_punctuation))

    @classmethod
    def build_bpe(
        cls,
        texts: Iterable[str],
        vocab_size: int = 8000,
        min_frequency: int = 2,
        lowercase: bool = False,
    ) -> Vocabulary:
        """Train a byte-pair-encoding subword vocabulary on ``texts`` (pass the training split only).

        The text is normalised (NFKC, optional lowercasing, whitespace runs -> one space, ends stripped) and cut at
        spaces by ``Metaspace``, which marks each word start with ``▁``; BPE then learns merges within words. The
        ``Metaspace`` decoder undoes it, so ``decode(encode(s))`` is the normalised ``s`` whenever every character
        of ``s`` is in the vocabulary (punctuation, apostrophes, hyphens and accents included).

        Args:
            texts: the corpus, one string per sentence.
            vocab_size: cap on ``len(vocab)``, special tokens and single characters included (> 4). Training stops
                earlier when no pair is frequent enough. When the corpus has more distinct characters than fit, the
                most frequent characters are kept (ties: lowest code point first) and the others encode to ``<unk>``.
            min_frequency: a pair of pieces must occur at least this many times to be merged (>= 1).
            lowercase: lowercase text before training and encoding.

        Returns:
            A vocabulary with ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>`` = 0..3, then the characters in code-point
            order, then the merged pieces in merge order (count descending, ties by the ids of the pair). The same
            corpus gives the same vocabulary, whatever the order of its texts.
        """
        if vocab_size <= len(SPECIAL_TOKENS):
            raise ValueError(f"vocab_size must be > {len(SPECIAL_TOKENS)} (the special tokens), got {vocab_size}")
        if min_frequency < 1:
            raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
        corpus = _checked_texts(texts)
        tokenizer = _bpe_tokenizer(lowercase)
        # The trainer's alphabet is every character of the pre-tokenized words, weighted by word count. Count it here
        # so that a too-large alphabet is cut deterministically: the trainer breaks count ties in hash order, so we
        # name the kept characters (initial_alphabet, which the trainer always keeps first) and drop all the others.
        chars: Counter[str] = Counter()
        for text in corpus:
            for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text)):
                chars.update(word)
        budget = vocab_size - len(SPECIAL_TOKENS)
        alphabet: dict[str, object] = {}
        if len(chars) > budget:
            kept = sorted(chars, key=lambda c: (-chars[c], c))[:budget]
            alphabet = {"initial_alphabet": kept, "limit_alphabet": budget}
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            show_progress=False,
            special_tokens=list(SPECIAL_TOKENS),  # added first, in this order: ids 0..3
            **alphabet,
        )
        with _serial_tokenizers():
            tokenizer.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
        return cls(tokenizer)

    # ---------------------------------------------------------------------------------------------- persistence

    def to_json(self) -> str:
        """The tokenizer as a JSON string (store it in a checkpoint; restore with :meth:`from_json`)."""
        return self.tokenizer.to_str()

    @classmethod
    def from_json(cls, s: str) -> Vocabulary:
        """Rebuild a vocabulary from :meth:`to_json`'s string (special ids are checked again)."""
        try:
            tokenizer = Tokenizer.from_str(s)
        except Exception as e:  # tokenizers raises a bare Exception on bad JSON
            raise ValueError(f"not a serialized tokenizers.Tokenizer: {e}") from None
        return cls(tokenizer)

    # ---------------------------------------------------------------------------------------------- lookup

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={len(self)}, model={type(self.tokenizer.model).__name__})"

    @property
    def kind(self) -> str:
        """``"bpe"`` for a BPE model, ``"word"`` for a word-level one, else the model class name lowercased."""
        model = self.tokenizer.model
        if isinstance(model, BPE):
            return "bpe"
        if isinstance(model, WordLevel):
            return "word"
        return type(model).__name__.lower()

    def _check_id(self, i: int) -> None:
        if not 0 <= i < len(self):
            raise ValueError(f"token id {i} is out of range for a vocabulary of size {len(self)}")

    def id_to_word(self, i: int) -> str:
        """The token string of id ``i`` (special tokens included, e.g. ``"<unk>"``)."""
        i = int(i)
        self._check_id(i)
        return self.tokenizer.id_to_token(i)

    def words(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """Every id as its token string, one for one (no filtering: labels for attention figures line up).

        Word-level vocabularies give words; BPE gives pieces as stored, a word start marked with ``▁``
        (``"▁vingt"``, ``"-et"``), so the labels show where each word begins.
        """
        return [self.id_to_word(i) for i in _as_id_list(ids)]

    # ---------------------------------------------------------------------------------------------- encoding

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens (words or BPE pieces), no ``<bos>``/``<eos>``; unknown -> ``unk_id``."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def unknown_words(self, text: str) -> list[str]:
        """The pieces of ``text`` this vocabulary encodes as ``<unk>`` (as written in ``text``)."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        return [text[start:end] for (start, end), i in zip(encoding.offsets, encoding.ids, strict=True)
                if i == self.unk_id]

    def word_id(self, word: str) -> int:
        """The id of a single known word, or -1 (unknown, or not one token): for naming objects in ground truth."""
        ids = self.encode(word)
        return ids[0] if len(ids) == 1 and ids[0] != self.unk_id else -1

    def encode_batch(self, texts: Sequence[str], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode and pad a batch as ``<bos> w1 .. wn <eos> <pad> ..``.

        Args:
            texts: the sentences (a list, not a single string).
            max_len: keep at most this many words per text (before ``<bos>``/``<eos>`` are added).

        Returns:
            ids: long ``[B, L]``, ``L`` the longest row including ``<bos>`` and ``<eos>``, padded with ``pad_id``.
            lengths: long ``[B]``, each row's length including ``<bos>`` and ``<eos>``.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings, got a single str (use encode)")
        if max_len is not None and max_len < 0:
            raise ValueError(f"max_len must be >= 0 or None, got {max_len}")
        # One encode per text, not tokenizer.encode_batch: no Rust thread pool, so DataLoader workers fork safely.
        rows = [[self.bos_id, *self.encode(t)[:max_len], self.eos_id] for t in texts]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # [B]
        ids = torch.full((len(rows), max((len(r) for r in rows), default=0)), self.pad_id, dtype=torch.long)  # [B, L]
        for b, row in enumerate(rows):
            ids[b, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, lengths

    # ---------------------------------------------------------------------------------------------- decoding

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of ``ids``: stops at the first ``<eos>``, skips ``<bos>``/``<pad>``, keeps ``<unk>`` visible.

        The rest goes through the tokenizer's decoder when it has one (BPE: pieces joined, ``▁`` -> space, so the
        output is detokenised text) and is joined with single spaces otherwise (word level).
        """
        kept: list[int] = []
        for i in _as_id_list(ids):
            self._check_id(i)
            if i == self.eos_id:
                break
            if i not in (self.bos_id, self.pad_id):
                kept.append(i)
        return self.tokenizer.decode(kept, skip_special_tokens=False)  # keeps "<unk>" visible

    def decode_batch(self, ids: torch.Tensor | Sequence[Sequence[int]]) -> list[str]:
        """:meth:`decode` of every row of a ``[B, L]`` tensor or a list of id lists."""
        if isinstance(ids, torch.Tensor) and ids.dim() != 2:
            raise ValueError(f"expected a 2-D tensor [B, L] of ids, got shape {tuple(ids.shape)}")
        return [self.decode(row) for row in ids]


def build_vocabulary(
    kind: str,
    texts: Iterable[str],
    *,
    vocab_size: int | None = 8000,
    min_count: int = 1,
    lowercase: bool = False,
) -> Vocabulary:
    """Build a translation vocabulary of the named kind on ``texts`` (pass the training split only).

    Args:
        kind: ``"word"`` -- :meth:`Vocabulary.build` with ``split_punctuation=False`` (punctuation stays attached,
            decoding reproduces the normalised text); ``"bpe"`` -- :meth:`Vocabulary.build_bpe`.
        texts: the corpus, one string per sentence.
        vocab_size: cap on ``len(vocab)``, special tokens included (word: ``max_size``, ``None`` for no cap;
            bpe: ``vocab_size``, required).
        min_count: word: keep words seen at least this many times; bpe: ``min_frequency`` of a merged pair.
        lowercase: lowercase text before building and encoding.

    Raises:
        ValueError: an unknown ``kind`` (the message lists the choices), or bad sizes.
    """
    if kind == "word":
        return Vocabulary.build(
            texts, min_count=min_count, max_size=vocab_size, lowercase=lowercase, split_punctuation=False
        )
    if kind == "bpe":
        if vocab_size is None:
            raise ValueError("vocab_size is required for a 'bpe' vocabulary, got None")
        return Vocabulary.build_bpe(texts, vocab_size=vocab_size, min_frequency=min_count, lowercase=lowercase)
    raise ValueError(f"unknown vocabulary kind {kind!r}; choose one of {list(VOCABULARY_KINDS)}")


class AdoptsVocabulary:
    """Mixin for a datamodule whose text goes through one tokeniser, built from its data into ``_vocabulary``:
    ``adopt_vocabularies`` makes it use a checkpoint's instead (eval.py on other data keeps the trained ids).
    ``vocabulary_name`` is the name the model and the checkpoint give that tokeniser."""

    vocabulary_name = "vocabulary"
    _vocabulary: Vocabulary | None

    def adopt_vocabularies(self, vocabularies: dict[str, Vocabulary]) -> None:
        self._vocabulary = vocabularies[self.vocabulary_name]
