"""predict.py for VQA models: image(s) + a question (``question=...``), or a JSON-lines file of
{"image": path, "question": text} -> answer, its probability, the top answers and the per-hop attention figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from datamodules.caption_corpora import image_transform
from figures.hops import hop_attention_figure
from tasks.prediction.base import Predictor
from tasks.prediction.inputs import InputError, input_files, read_image, read_jsonl

TOP_ANSWERS = 3


class QuestionPredictor(Predictor):
    task = "visual question answering"
    input_kinds = ("image", "image_folder", "jsonl")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.transform = image_transform(self.model.hparams.image_size)
        self.vocabulary = self.model.question_vocabulary

    def accepts(self) -> str:
        return "an image file or a folder of images with question=..., or a JSON-lines file of " \
               "{\"image\": ..., \"question\": ...}"

    def items(self, text: str, kind: str) -> list[tuple[Path, str]]:
        if kind == "jsonl":
            base = Path(text).expanduser().parent
            return [(base / record["image"], str(record["question"]))
                    for record in read_jsonl(Path(text).expanduser(), ("image", "question"))]
        question = str(self.options.get("question") or "").strip()
        if not question:
            raise InputError(f"a VQA model answers questions: add question=\"...\" to ask it of {text}, or give a "
                             "JSON-lines file of {\"image\": ..., \"question\": ...}")
        return [(path, question) for path in input_files(text, kind)]

    def load(self, item: tuple[Path, str]) -> dict[str, Any]:
        path, question = item
        return {"image": self.transform(read_image(path)), "question": question, "name": str(path)}  # [3, S, S]

    def collate(self, loaded: list[dict[str, Any]]) -> dict[str, Any]:
        questions = [item["question"] for item in loaded]
        ids, lengths = self.vocabulary.encode_batch(questions)                             # [B, L], [B]
        return {"image": torch.stack([item["image"] for item in loaded]), "question": ids,
                "question_lengths": lengths, "question_text": questions, "name": [item["name"] for item in loaded]}

    def records(self, batch: dict[str, Any], outputs: dict[str, Any]) -> list[dict[str, Any]]:
        answers = self.model.hparams.answers
        top_p, top_i = outputs["probabilities"].topk(min(TOP_ANSWERS, len(answers)), dim=-1)    # [B, 3]
        records = []
        for b, (name, question) in enumerate(zip(batch["name"], batch["question_text"], strict=True)):
            ranked = [[answers[i], round(float(p), 4)] for i, p in zip(top_i[b].tolist(), top_p[b].tolist(),
                                                                       strict=True)]
            record = {"input": name, "question": question, "answer": ranked[0][0], "probability": ranked[0][1],
                      "top_answers": ranked}
            unknown = self.vocabulary.unknown_words(question)
            if unknown:
                record["unknown_words"] = unknown
            records.append(record)
        return records

    def figure(self, batch: dict[str, Any], outputs: dict[str, Any], index: int) -> plt.Figure:
        answer = self.model.hparams.answers[int(outputs["probabilities"][index].argmax())]
        return hop_attention_figure(batch["image"][index:index + 1].float().cpu(),
                                    batch["question_text"][index:index + 1], [answer], None,
                                    [m[index:index + 1].float().cpu() for m in outputs["maps"]], self.model.grid)
