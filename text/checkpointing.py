"""Tokenisers travel inside checkpoints, so a checkpoint turns raw text into ids and ids back into text alone."""

from __future__ import annotations

from typing import Any

from text.vocabulary import Vocabulary


def save_vocabularies(checkpoint: dict[str, Any], **vocabularies: Vocabulary) -> None:
    """checkpoint[name] = the vocabulary's JSON, for every name=vocabulary given."""
    for name, vocabulary in vocabularies.items():
        checkpoint[name] = vocabulary.to_json()


def load_vocabularies(checkpoint: dict[str, Any], *names: str) -> list[Vocabulary]:
    """The vocabularies stored under ``names``; a KeyError naming the missing ones (an older checkpoint)."""
    missing = [name for name in names if name not in checkpoint]
    if missing:
        raise KeyError(f"this checkpoint has no {missing} entry (written by an older version?): it cannot turn text "
                       f"into ids and back; retrain, or add the tokenisers to the checkpoint")
    return [Vocabulary.from_json(checkpoint[name]) for name in names]
