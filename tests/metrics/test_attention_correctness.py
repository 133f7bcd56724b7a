"""Attention correctness: box cover of grid cells, grounded mass vs uniform, word-object grounding, entropy."""

from __future__ import annotations

import math

import torch

from metrics.attention_correctness import (
    attention_entropy,
    box_cell_cover,
    grounded_attention_mass,
    word_object_grounding,
)


def test_cover_of_whole_cells_and_half_cells():
    # 4x4 grid; box covering the top-left 2x2 cells exactly, then a box covering half of cell (0, 0) in x
    cover = box_cell_cover(torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.125, 0.25]]), (4, 4))  # [2, 16]
    expected = torch.zeros(16)
    expected[[0, 1, 4, 5]] = 1.0
    torch.testing.assert_close(cover[0], expected)
    assert cover[1, 0] == 0.5 and cover[1, 1:].sum() == 0


def test_cover_sums_to_box_area_times_cells():
    boxes = torch.tensor([[0.13, 0.27, 0.71, 0.55]])
    cover = box_cell_cover(boxes, (7, 9))
    area = (0.71 - 0.13) * (0.55 - 0.27)
    assert math.isclose(cover.sum().item(), area * 63, rel_tol=1e-5)


def test_mass_on_box_and_uniform_reference():
    grid = (4, 4)
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]])           # [1, K=2, 4]
    attention = torch.zeros(1, 3, 16)                                            # [1, L=3, N]
    attention[0, 0, 0] = 1.0                        # word 0 looks inside box 0
    attention[0, 1, 15] = 1.0                       # word 1 looks inside box 1
    attention[0, 2] = 1 / 16                        # word 2 (names nothing)
    grounding = torch.tensor([[[True, False], [True, False], [False, False]]])   # word 1 names box 0: a miss
    mass, uniform, where = grounded_attention_mass(attention, grounding, boxes, grid)
    torch.testing.assert_close(mass, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(uniform, torch.tensor([0.25, 0.25]))
    assert where.tolist() == [[0, 0], [0, 1]]


def test_word_naming_two_objects_counts_both_boxes():
    boxes = torch.tensor([[[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]]])
    attention = torch.zeros(1, 1, 4)
    attention[0, 0, 0] = 0.5
    attention[0, 0, 3] = 0.5
    mass, uniform, _ = grounded_attention_mass(attention, torch.ones(1, 1, 2, dtype=torch.bool), boxes, (2, 2))
    torch.testing.assert_close(mass, torch.tensor([1.0]))
    torch.testing.assert_close(uniform, torch.tensor([0.5]))


def test_grounding_from_object_words():
    tokens = torch.tensor([[7, 9, 5, -1]])                     # e.g. "red circle left <pad>"
    object_words = torch.tensor([[[7, 9], [8, 9], [-1, -1]]])  # red circle, blue circle, padded object
    grounding = word_object_grounding(tokens, object_words)
    assert grounding.tolist() == [[[True, False, False], [True, True, False], [False, False, False],
                                   [False, False, False]]]


def test_entropy_of_uniform_and_one_hot_maps():
    attention = torch.stack([torch.full((8,), 1 / 8), torch.eye(8)[2]])[None]       # [1, 2, 8]
    entropy = attention_entropy(attention, torch.tensor([[True, True]]))
    torch.testing.assert_close(entropy, torch.tensor([math.log(8), 0.0]))
