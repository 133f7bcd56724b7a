"""A word vocabulary built on Hugging Face ``tokenizers``, small enough to travel inside a checkpoint.

:class:`Vocabulary` wraps a :class:`tokenizers.Tokenizer` and fixes the ids of four special tokens:
``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3. :meth:`Vocabulary.build` makes a word-level
tokenizer (NFKC, optional lowercasing, a ``Whitespace`` pre-tokenizer that splits words from punctuation);
any other tokenizer (e.g. BPE, later) can be wrapped directly as long as its special ids are the fixed ones.

Persistence is the tokenizer's own JSON: ``vocab.to_json()`` is a plain string a LightningModule can put in
its checkpoint dict (``on_save_checkpoint``) and ``Vocabulary.from_json(s)`` restores it exactly.

The special strings are registered as special (added) tokens, as ``tokenizers`` does for its own models, so a
literal ``<unk>`` in a text (common in preprocessed NMT corpora) encodes to ``unk_id``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import WordLevel

__all__ = ["Vocabulary"]

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)  # index in this tuple == fixed id
_FIXED_IDS = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
_SPECIAL_SPLIT = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


def _word_level_tokenizer(vocab: dict[str, int], lowercase: bool) -> Tokenizer:
    """A word-level tokenizer over ``vocab`` with the suite's normaliser, pre-tokenizer and special tokens."""
    tokenizer = Tokenizer(WordLevel(vocab, unk_token=UNK))
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+|[^\w\s]+ : words and punctuation apart
    tokenizer.add_special_tokens(list(SPECIAL_TOKENS))
    return tokenizer


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
    def split_words(text: str, lowercase: bool = True) -> list[str]:
        """The words ``build`` counts in ``text``: exactly the pieces the built tokenizer encodes one id each."""
        probe = _word_level_tokenizer(dict(_FIXED_IDS), lowercase)
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
    ) -> Vocabulary:
        """Count the words of ``texts`` (pass the training split only) and keep the frequent ones.

        Args:
            texts: the corpus, one string per sentence/caption.
            min_count: keep words seen at least this many times (>= 1).
            max_size: cap on ``len(vocab)``, the 4 special tokens included (>= 4); the most frequent words win.
            lowercase: lowercase text before counting and encoding.

        Returns:
            A vocabulary whose word ids (from 4 on) follow count descending, then the word itself, so the same
            corpus gives the same ids whatever the order of its texts.
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < len(SPECIAL_TOKENS):
            raise ValueError(f"max_size must be >= {len(SPECIAL_TOKENS)} (the special tokens), got {max_size}")
        probe = _word_level_tokenizer(dict(_FIXED_IDS), lowercase)
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
        return cls(_word_level_tokenizer(vocab, lowercase))

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

    def _check_id(self, i: int) -> None:
        if not 0 <= i < len(self):
            raise ValueError(f"token id {i} is out of range for a vocabulary of size {len(self)}")

    def id_to_word(self, i: int) -> str:
        """The token string of id ``i`` (special tokens included, e.g. ``"<unk>"``)."""
        i = int(i)
        self._check_id(i)
        return self.tokenizer.id_to_token(i)

    def words(self, ids: Sequence[int] | torch.Tensor) -> list[str]:
        """Every id as its token string, one for one (no filtering: labels for attention figures line up)."""
        return [self.id_to_word(i) for i in _as_id_list(ids)]

    # ---------------------------------------------------------------------------------------------- encoding

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s words, no ``<bos>``/``<eos>``; unknown words map to ``unk_id``."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self.tokenizer.encode(text, add_special_tokens=False).ids

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
        """Text of ``ids``: stops at the first ``<eos>``, skips ``<bos>``/``<pad>``, words joined by spaces."""
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
