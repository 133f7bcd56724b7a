"""metrics.vqa_accuracy: official VQA normalisation and leave-one-out accuracy, expected values worked out by hand."""

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from metrics.vqa_accuracy import (
    CONTRACTIONS,
    VQAAccuracy,
    normalize_answer,
    process_punctuation,
    soft_score_targets,
    vqa_accuracy,
)


def humans(**counts: int) -> list[str]:
    """10 human answers: the given answers repeated, padded with distinct fillers that match nothing."""
    out = [a for a, n in counts.items() for _ in range(n)]
    return out + [f"filler{i}" for i in range(10 - len(out))]


# Leave-one-out by hand, k matches among 10: the k subsets leaving out a match see k-1 matches, the 10-k others k.
# k=1: (1*min(1,0/3) + 9*min(1,1/3)) / 10 = (0 + 3) / 10           = 0.3
# k=2: (2*min(1,1/3) + 8*min(1,2/3)) / 10 = (2/3 + 16/3) / 10      = 0.6
# k=3: (3*min(1,2/3) + 7*min(1,3/3)) / 10 = (2 + 7) / 10           = 0.9
# k=4: (4*min(1,3/3) + 6*min(1,4/3)) / 10 = (4 + 6) / 10           = 1.0
# k=0: 0
@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (7, 1.0), (10, 1.0)])
def test_leave_one_out_values(k, expected):
    assert vqa_accuracy("cat", humans(cat=k)) == pytest.approx(expected)


def test_number_words_merge_with_digits():
    # "2" x3 and "two" x1 all normalise to "2": 4 matches -> 1.0; "3" x1 -> 0.3
    answers = humans(**{"2": 3, "two": 1, "3": 1})
    assert vqa_accuracy("2", answers) == pytest.approx(1.0)
    assert vqa_accuracy("Two", answers) == pytest.approx(1.0)
    assert vqa_accuracy("three", answers) == pytest.approx(0.3)
    # without the number-word map "2" would only have 3 matches -> 0.9
    assert vqa_accuracy("2", humans(**{"2": 3, "four": 1})) == pytest.approx(0.9)


def test_punctuation_case_and_articles():
    assert normalize_answer("The dog.") == "dog"
    assert normalize_answer("  A Red\tcar \n") == "red car"
    assert normalize_answer("an apple") == "apple"
    assert normalize_answer("Yes!") == "yes"
    # "The dog." matches "dog" x2 -> 0.6
    assert vqa_accuracy("The dog.", humans(dog=2)) == pytest.approx(0.6)
    # "hot-dog" -> "hot dog" (hyphen between letters becomes a space)
    assert vqa_accuracy("hot dog", humans(**{"hot-dog": 3})) == pytest.approx(0.9)


def test_official_punctuation_rules():
    assert process_punctuation("1,000") == "1000"  # digit-comma-digit: all marks removed, not spaced
    assert normalize_answer("cat,dog") == "cat dog"  # comma between letters: a space
    assert normalize_answer("left , right") == "left right"  # comma next to a space: removed
    assert normalize_answer("3.5") == "3.5"  # a period before a digit stays
    assert normalize_answer("end.") == "end"
    assert normalize_answer("none") == "0" and normalize_answer("ten") == "10"


def test_contractions():
    assert normalize_answer("dont know") == "don't know"
    assert normalize_answer("Isnt") == "isn't"
    assert normalize_answer("whats that") == "what's that"
    assert CONTRACTIONS["wont"] == "won't" and len(CONTRACTIONS) > 100
    assert vqa_accuracy("dont know", humans(**{"don't know": 3})) == pytest.approx(0.9)


def test_empty_human_answers_is_an_error():
    with pytest.raises(ValueError, match="at least one human answer"):
        vqa_accuracy("yes", [])


def test_metric_overall_and_per_type():
    metric = VQAAccuracy()
    # yes/no: 1.0 and 0.3; number: 0.6; other: 0.0
    metric.update(["yes", "no"], [humans(yes=10), humans(no=1)], ["yes/no", "yes/no"])
    metric.update(["two", "cat"], [humans(**{"2": 2}), humans(dog=10)], ["number", "other"])
    out = metric.compute()
    assert set(out) == {"overall", "yes/no", "number", "other"}
    assert out["overall"].item() == pytest.approx((1.0 + 0.3 + 0.6 + 0.0) / 4)  # 0.475
    assert out["yes/no"].item() == pytest.approx(0.65)
    assert out["number"].item() == pytest.approx(0.6)
    assert out["other"].item() == pytest.approx(0.0)
    metric.reset()
    metric.update(["yes"], [humans(yes=3)], ["yes/no"])
    out = metric.compute()
    assert set(out) == {"overall", "yes/no"}  # types without questions are left out
    assert out["overall"].item() == pytest.approx(0.9)


def test_metric_without_types_and_state_sums():
    metric = VQAAccuracy(answer_types=False)
    metric.update(["a cat", "dog"], [humans(cat=1), humans(dog=4)], ["other", "other"])
    assert set(metric.compute()) == {"overall"}
    assert metric.compute()["overall"].item() == pytest.approx(0.65)
    # states are sums/counts reduced with "sum" (DDP sync adds them up)
    assert all(metric._reductions[name] is dim_zero_sum for name in ("total", "count", "type_total", "type_count"))
    assert metric.count.item() == 2
    assert torch.equal(metric.type_count, torch.zeros(3, dtype=torch.long))


def test_metric_rejects_bad_input():
    metric = VQAAccuracy()
    with pytest.raises(ValueError, match="unknown answer_type"):
        metric.update(["yes"], [humans(yes=1)], ["colour"])
    with pytest.raises(ValueError, match="2 predictions but 1"):
        metric.update(["yes", "no"], [humans(yes=1)])


def test_soft_score_targets():
    index = {"2": 0, "3": 1, "yes": 2}
    targets = soft_score_targets(
        [
            humans(**{"2": 3, "two": 1, "3": 2}),  # "2" x4 -> 1.0, "3" x2 -> 0.6, fillers not in the index
            humans(**{"Yes": 1, "no": 9}),  # "yes" x1 -> 0.3, "no" outside the index: ignored
            humans(maybe=10),  # nothing in the index: an all-zero row
        ],
        index,
    )
    expected = torch.tensor([[1.0, 0.6, 0.0], [0.0, 0.0, 0.3], [0.0, 0.0, 0.0]])
    assert targets.shape == (3, 3)
    assert torch.allclose(targets, expected)
    # the target equals the accuracy the answer would score
    assert targets[0, 1].item() == pytest.approx(vqa_accuracy("3", humans(**{"2": 3, "two": 1, "3": 2})))
