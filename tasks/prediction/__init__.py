"""Per-task adapters of predict.py (see tasks.prediction.base.Predictor), found by the model's class."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl

from tasks.captioning import ImageCaptioner
from tasks.draw import DRAWTask
from tasks.nmt import TranslationModel
from tasks.prediction.base import Predictor
from tasks.prediction.captioning import CaptionPredictor
from tasks.prediction.draw import GlimpsePredictor, SamplePredictor
from tasks.prediction.nmt import SentencePredictor
from tasks.prediction.stn import DigitPredictor
from tasks.prediction.video_captioning import ClipPredictor
from tasks.prediction.vqa import QuestionPredictor
from tasks.stn import STNClassifier
from tasks.video_captioning import VideoCaptioner
from tasks.vqa import StackedAttentionVQA

PREDICTORS: dict[type[pl.LightningModule], type[Predictor] | Callable[[pl.LightningModule], type[Predictor]]] = {
    STNClassifier: DigitPredictor, ImageCaptioner: CaptionPredictor, VideoCaptioner: ClipPredictor,
    StackedAttentionVQA: QuestionPredictor, TranslationModel: SentencePredictor,
    DRAWTask: lambda model: SamplePredictor if model.generating else GlimpsePredictor,
}


def predictor_class(model: pl.LightningModule) -> type[Predictor]:
    """The predictor of the model's class (or of its nearest base class that has one)."""
    for cls in type(model).__mro__:
        if cls in PREDICTORS:
            chosen = PREDICTORS[cls]
            return chosen if isinstance(chosen, type) else chosen(model)  # a task with modes picks by the model
    raise TypeError(f"predict.py has no predictor for {type(model).__qualname__}")
