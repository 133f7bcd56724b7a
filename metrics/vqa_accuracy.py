"""The official VQA accuracy (Antol et al. 2015; VQA API ``vqaEval.py``), as functions and a torchmetrics Metric.

Answers are normalised as the official evaluation does: ``processPunctuation`` (the official punctuation list,
dropped when next to a space or when the text has a digit-comma-digit, else replaced by a space; periods not
followed by a digit removed) and then ``processDigitArticle`` (lowercase, number words ``none``..``ten`` -> digits,
articles ``a``/``an``/``the`` removed, the official contraction map, e.g. ``dont`` -> ``don't``).

Per question, the accuracy of a prediction against the n (= 10) human answers is the mean over the n
leave-one-out subsets of ``min(1, #matches among the other n-1 / 3)``: with 10 answers, 1 match -> 0.3,
2 -> 0.6, 3 -> 0.9, 4 or more -> 1.0.

Two deliberate differences from ``vqaEval.py``: both sides are always normalised (the official code skips the
normalisation when all 10 human answers are identical strings, which only matters for a prediction that differs
from them in punctuation/case/articles), and the period strip has no 32-replacement cap (the official passes
``re.UNICODE`` as the ``count`` argument).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = [
    "ANSWER_TYPES",
    "CONTRACTIONS",
    "VQAAccuracy",
    "normalize_answer",
    "process_digit_article",
    "process_punctuation",
    "soft_score_targets",
    "vqa_accuracy",
]

ANSWER_TYPES = ("yes/no", "number", "other")

# The official maps and lists of vqaEval.py (VQA API), copied verbatim.
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't",
    "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll",
    "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've",
    "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# Verbatim from vqaEval.py: "(?!<=\d)" is a (harmless) typo for a lookbehind; the effect is "a period not followed
# by a digit".
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


def process_punctuation(text: str) -> str:
    """``vqaEval.processPunctuation``: each punctuation mark is removed if it touches a space (or the text has a
    digit-comma-digit, e.g. ``1,000``), else replaced by a space; then periods not followed by a digit go."""
    out = text
    has_number_comma = _COMMA_STRIP.search(text) is not None
    for p in PUNCTUATION:
        if p + " " in text or " " + p in text or has_number_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out)


def process_digit_article(text: str) -> str:
    """``vqaEval.processDigitArticle``: lowercase, split on whitespace, number words -> digits, drop articles,
    expand contractions, join with single spaces."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_answer(text: str) -> str:
    """An answer as the official evaluation compares it: newlines/tabs -> spaces, strip, punctuation, digits and
    articles, contractions (e.g. ``"The Two dogs."`` -> ``"2 dogs"``, ``"dont"`` -> ``"don't"``)."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return process_digit_article(process_punctuation(text))


def _accuracy_normalised(prediction: str, humans: Sequence[str]) -> float:
    """Leave-one-out accuracy of an already normalised prediction against already normalised human answers."""
    n = len(humans)
    k = sum(h == prediction for h in humans)
    # the k subsets leaving out a match see k-1 matches; the n-k others see k
    return (k * min(1.0, (k - 1) / 3) + (n - k) * min(1.0, k / 3)) / n


def vqa_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """The official VQA accuracy of one prediction, in [0, 1].

    Args:
        prediction: the predicted answer (raw text; normalised here).
        human_answers: the human answers of the question (raw, usually 10; normalised here).

    Returns:
        The mean over the leave-one-out subsets of ``min(1, matches among the others / 3)``.
    """
    if len(human_answers) == 0:
        raise ValueError("vqa_accuracy needs at least one human answer, got none")
    return _accuracy_normalised(normalize_answer(prediction), [normalize_answer(h) for h in human_answers])


def soft_score_targets(human_answers: Sequence[Sequence[str]], answer_to_index: dict[str, int]) -> Tensor:
    """Soft classification targets ``[B, K]``: target[b, answer_to_index[a]] = ``vqa_accuracy(a, humans_b)``.

    The score is the official accuracy the answer would get (1 match -> 0.3, 2 -> 0.6, 3 -> 0.9, >= 4 -> 1.0 with
    10 answers), so the target agrees with the metric. ``answer_to_index`` keys must be normalised answers (as
    :func:`datamodules.vqa_v2.top_k_answers` returns); human answers outside it are ignored, their mass is not in
    the target (a row may be all zero).
    """
    num_answers = len(answer_to_index)
    if num_answers and (min(answer_to_index.values()) < 0 or max(answer_to_index.values()) >= num_answers):
        raise ValueError(f"answer_to_index values must be 0..{num_answers - 1}")
    targets = torch.zeros(len(human_answers), num_answers)  # [B, K]
    for b, humans in enumerate(human_answers):
        if len(humans) == 0:
            raise ValueError(f"soft_score_targets: question {b} has no human answers")
        normalised = [normalize_answer(h) for h in humans]
        for answer in Counter(normalised):
            index = answer_to_index.get(answer)
            if index is not None:
                targets[b, index] = _accuracy_normalised(answer, normalised)
    return targets


class VQAAccuracy(Metric):
    """The official VQA accuracy, overall and per answer type, synced under DDP (sums and counts).

    ``compute()`` returns fractions in [0, 1] (the official tables print them x100): ``"overall"`` and, when
    ``answer_types`` is on, one entry per type in :data:`ANSWER_TYPES` (``"yes/no"``, ``"number"``, ``"other"``)
    that has at least one question (a type with none is left out rather than reported as 0 or NaN).

    Args:
        answer_types: keep per-answer-type sums (``update`` then takes each question's ``answer_type``).
    """

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, answer_types: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answer_types = answer_types
        self.add_state("total", default=torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("type_total", default=torch.zeros(len(ANSWER_TYPES)), dist_reduce_fx="sum")
        self.add_state("type_count", default=torch.zeros(len(ANSWER_TYPES), dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self,
        predictions: Sequence[str],
        human_answers: Sequence[Sequence[str]],
        answer_types: Sequence[str] | None = None,
    ) -> None:
        """Score a batch: ``predictions[i]`` against ``human_answers[i]`` (type ``answer_types[i]``, if given)."""
        if len(predictions) != len(human_answers):
            raise ValueError(f"{len(predictions)} predictions but {len(human_answers)} lists of human answers")
        if answer_types is not None and len(answer_types) != len(predictions):
            raise ValueError(f"{len(predictions)} predictions but {len(answer_types)} answer types")
        if answer_types is not None and self.answer_types:
            unknown = sorted(set(answer_types) - set(ANSWER_TYPES))
            if unknown:
                raise ValueError(f"unknown answer_type(s) {unknown}, expected one of {ANSWER_TYPES}")
        scores = [vqa_accuracy(p, h) for p, h in zip(predictions, human_answers, strict=True)]
        self.total += sum(scores)
        self.count += len(scores)
        if answer_types is not None and self.answer_types:
            type_index = torch.tensor([ANSWER_TYPES.index(t) for t in answer_types], dtype=torch.long)  # [B]
            score_tensor = torch.tensor(scores, dtype=self.type_total.dtype)  # [B]
            self.type_total += torch.zeros_like(self.type_total).index_add_(
                0, type_index.to(self.device), score_tensor.to(self.device)
            )
            self.type_count += torch.bincount(type_index, minlength=len(ANSWER_TYPES)).to(self.device)

    def compute(self) -> dict[str, Tensor]:
        """``{"overall": acc, "yes/no": acc, "number": acc, "other": acc}`` as float32 fractions in [0, 1]."""
        out = {"overall": (self.total / self.count.clamp(min=1)).float()}
        if self.answer_types:
            for t, kind in enumerate(ANSWER_TYPES):
                if self.type_count[t] > 0:
                    out[kind] = (self.type_total[t] / self.type_count[t]).float()
        return out
