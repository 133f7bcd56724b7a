"""The Sort-of-CLEVR curriculum option: which questions come first, and clear errors for bad settings."""

from __future__ import annotations

import pytest

from datamodules.sampling import CurriculumSampler
from datamodules.vqa import VQADataModule
from suite.configs import task_datamodule


def datamodule(**kwargs) -> VQADataModule:
    data = task_datamodule("vqa", num_images={"train": 20, "val": 4, "test": 4}, batch_size=16, num_workers=0, seed=2,
                           **kwargs)
    data.setup("fit")
    return data


def test_the_first_training_questions_are_of_the_curriculum_types_only():
    data = datamodule(curriculum_types=["shape", "count"], curriculum_questions=40)
    loader = data.train_dataloader()
    questions = data.datasets["train"].questions
    order = list(loader.sampler)
    assert isinstance(loader.sampler, CurriculumSampler)
    assert {questions[i].type for i in order[:40]} == {"shape", "count"}
    assert {questions[i].type for i in order[40:]} > {"shape", "count"}          # then every type
    batch = next(iter(loader))
    assert batch["question_text"] == [questions[i].text for i in order[:16]]
    assert not isinstance(data.val_dataloader().sampler, CurriculumSampler)
    assert not isinstance(datamodule(curriculum_questions=0).train_dataloader().sampler, CurriculumSampler)   # off
    assert isinstance(datamodule().train_dataloader().sampler, CurriculumSampler)   # on in configs/task/vqa.yaml


def test_curriculum_stages_come_in_order_then_every_type():
    data = datamodule(curriculum_types=[["shape"], ["horizontal", "vertical"]], curriculum_questions=[30, 50])
    questions = data.datasets["train"].questions
    order = list(data.train_dataloader().sampler)
    assert {questions[i].type for i in order[:30]} == {"shape"}
    assert {questions[i].type for i in order[30:80]} == {"horizontal", "vertical"}
    assert len({questions[i].type for i in order[80:]}) == 6                       # then every type
    one_stage = datamodule(curriculum_types=["shape"], curriculum_questions=30)
    assert list(one_stage.train_dataloader().sampler)[:30] == order[:30]          # a flat list is one stage


@pytest.mark.parametrize(("options", "message"), [
    ({"curriculum_types": ["colour"], "curriculum_questions": 10}, r"unknown question type.*'colour'.*'shape'"),
    ({"curriculum_types": [], "curriculum_questions": 10}, "needs data.curriculum_types"),
    ({"curriculum_types": ["shape"], "curriculum_questions": -5}, "count >= 0"),
    ({"source": "vqa2", "root": "/nowhere", "curriculum_types": ["shape"], "curriculum_questions": 10},
     "Sort-of-CLEVR"),
    ({"curriculum_types": [["shape"], ["count"]], "curriculum_questions": [10]}, "1 count.* 2 stage"),
    ({"curriculum_types": [["shape"], ["count"]], "curriculum_questions": [10, -1]}, "count >= 0"),
    ({"curriculum_types": ["shape", ["count"]], "curriculum_questions": 10}, "not a mix"),
    ({"curriculum_types": [["shape"], ["size"]], "curriculum_questions": [10, 10]}, r"unknown.*'size'"),
])
def test_bad_curriculum_settings_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        task_datamodule("vqa", **options)
