"""predict.py for translation models: a sentence, or a text file of one sentence a line -> translation and the
alignment figure (attention of each generated token over the source tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from figures.alignment import alignment_figure
from tasks.prediction.base import Predictor
from tasks.prediction.inputs import read_lines


class SentencePredictor(Predictor):
    task = "translation"
    input_kinds = ("sentence", "text_file")

    def items(self, text: str, kind: str) -> list[tuple[str, str]]:
        if kind == "sentence":
            return [("sentence", text.strip())]
        path = Path(text).expanduser()
        return [(f"{path}:{number}", line) for number, line in read_lines(path)]

    def load(self, item: tuple[str, str]) -> dict[str, Any]:
        name, sentence = item
        return {"sentence": sentence, "name": name}

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        sentences = [item["sentence"] for item in loaded]
        source, lengths = self.model.source_vocabulary.encode_batch(sentences)             # [B, S], [B]
        return {"source": source, "source_lengths": lengths, "sentence": sentences,
                "name": [item["name"] for item in loaded]}

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        records = []
        for name, sentence, translation in zip(batch["name"], batch["sentence"], outputs["translations"],
                                               strict=True):
            record = {"input": name, "source": sentence, "translation": translation}
            unknown = self.model.source_vocabulary.unknown_words(sentence)
            if unknown:
                record["unknown_words"] = unknown
            records.append(record)
        return records

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        return alignment_figure(outputs["source_words"][index:index + 1], outputs["target_words"][index:index + 1],
                                [outputs["attention"][index].float().cpu()])
