"""Stacked attention on Sort-of-CLEVR: the no-attention baseline vs SAN with 1 and 2 hops, at the same budget.

    python benchmarks/vqa.py                      # about 25 CPU minutes here
    python benchmarks/vqa.py --epochs 1           # a quick pass

Each configuration is one `train.py task=vqa` run; the table gives test accuracy on non-relational and relational
questions, the attention correctness of each hop (mass on the objects the question is about, next to a uniform
map's), throughput and memory. Writes benchmarks/results/vqa.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402

REFERENCE = ("Santoro et al. 2017 on Sort-of-CLEVR: CNN+MLP about 63% relational (94% non-relational), "
             "relation network about 94% relational")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--hops", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "vqa")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vqa.md")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    lines = ["| model | test acc % | non-relational % | relational % | attention correctness per hop (uniform) "
             "| train questions/s | wall min | peak RSS GiB |", "|---|---|---|---|---|---|---|---|"]
    for hops in args.hops:
        run = training_runs.run_training("vqa", f"hops{hops}", [f"model.hops={hops}",
                                                                f"trainer.max_epochs={args.epochs}", *args.overrides],
                                         runs_dir)
        name = "no attention (mean-pooled image + question)" if hops == 0 else f"SAN, {hops} hop{'s' * (hops > 1)}"
        hops_text = "-" if hops == 0 else ", ".join(
            f"{run.last(f'test/attention_correctness_hop{h + 1}'):.2f}" for h in range(hops)) + \
            f" ({run.last('test/attention_correctness_uniform'):.2f})"
        lines.append(f"| {name} | {100 * run.last('test/acc'):.1f} | {100 * run.last('test/acc_non_relational'):.1f} "
                     f"| {100 * run.last('test/acc_relational'):.1f} | {hops_text} | "
                     f"{run.median('perf/train_samples_per_sec'):.0f} | {run.wall_minutes:.1f} | "
                     f"{run.peak_rss_gib:.2f} |")
        print(lines[-1], flush=True)
    title = (f"VQA benchmark, {training_runs.machine()}. Data: Sort-of-CLEVR (5,000 train images x 10 questions, "
             f"250 val, 500 test images; 75x75, 10x10 grid), {args.epochs} epochs each, defaults of "
             f"configs/task/vqa.yaml. Reference: {REFERENCE}.")
    training_runs.write_report(title, "vqa.py", lines, args.out)


if __name__ == "__main__":
    main()
