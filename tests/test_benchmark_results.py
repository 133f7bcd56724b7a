"""benchmarks/results.py: each task's row reads the metrics its run logged, and flags runs over the memory target."""

from __future__ import annotations

from pathlib import Path

from benchmarks import results
from benchmarks.training_runs import TrainingRun


def fake_run(metrics: dict[str, float], peak_gib: float = 1.2) -> TrainingRun:
    rows = [{"perf/train_samples_per_sec": "100"}, {"perf/train_samples_per_sec": "300"},
            {"perf/train_samples_per_sec": "200"}, {key: str(value) for key, value in metrics.items()}]
    return TrainingRun(Path("."), rows, wall_minutes=2.5, peak_rss_gib=peak_gib)


def test_every_task_row_shows_its_quality_attention_check_speed_and_memory():
    specs = {spec.task: spec for spec in results.TASKS}
    assert set(specs) == {"stn", "captioning", "video_captioning", "vqa", "nmt", "draw"}
    vqa = results.row(specs["vqa"], fake_run({"test/acc": 0.612, "test/acc_non_relational": 0.55,
                                              "test/acc_relational": 0.674, "test/attention_correctness_hop1": 0.041,
                                              "test/attention_correctness_uniform": 0.03}))
    assert "accuracy % 61.2, non-relational % 55.0, relational % 67.4" in vqa
    assert ": 0.04 (uniform / identity 0.03)" in vqa and "| 200 | 2.5 | 1.20 |" in vqa
    nmt = results.row(specs["nmt"], fake_run({"test/bleu": 98.76, "test/perplexity": 1.234}, peak_gib=4.5))
    assert "SacreBLEU 98.8, perplexity 1.23" in nmt and "| - |" in nmt and "4.50 (over 4 GiB)" in nmt
    stn = results.row(specs["stn"], fake_run({"test/error": 0.011, "test/iou": 0.26, "test/iou_identity": 0.19}))
    assert "test error % 1.1" in stn and "0.26 (uniform / identity 0.19)" in stn
    draw = results.row(specs["draw"], fake_run({"test/nll_bound": 123.456, "test/kl": 17.96}))
    assert "NLL bound (nats) 123.5, KL (nats) 18.0" in draw and "| - |" in draw


def test_rows_of_an_earlier_table_are_read_back_by_task(tmp_path):
    """`--tasks vqa` re-measures one row and keeps the others of the existing table."""
    table = tmp_path / "RESULTS.md"
    assert results.earlier_rows(table) == {}
    stn = "| `stn` | ST-CNN | test error % 1.9 | - | 1100 | 1.8 | 0.95 | paper |"
    nmt = "| `nmt` | Bahdanau | SacreBLEU 99.9 | - | 963 | 2.9 | 0.93 | paper |"
    table.write_text("\n".join(["# Results", "", "| task | model |", "|---|---|", stn, "| `unknown` | x |", nmt]))
    assert results.earlier_rows(table) == {"stn": stn, "nmt": nmt}
