"""Video captioning on the generated event clips: the mean-pool baseline vs temporal attention, same budget.

    python benchmarks/video_captioning.py                # about 12 CPU minutes here
    python benchmarks/video_captioning.py --epochs 1     # a quick pass

Each configuration is one `train.py task=video_captioning` run: test BLEU-4 and CIDEr-D of beam-searched captions,
temporal attention correctness (attention mass on the frames of the event a word names, next to uniform weights'),
attention entropy, throughput (clips/s) and memory. Writes benchmarks/results/video_captioning.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "video_captioning")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video_captioning.md")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    lines = ["| model | BLEU-4 | CIDEr-D | temporal attention correctness (uniform) | attention entropy nats "
             "| train clips/s | wall min | peak RSS GiB |", "|---|---|---|---|---|---|---|---|"]
    for temporal in ("mean", "attention"):
        run = training_runs.run_training("video_captioning", temporal, [
            f"model.temporal={temporal}", f"trainer.max_epochs={args.epochs}", *args.overrides], runs_dir)
        correctness = "-" if temporal == "mean" else \
            f"{run.last('test/attention_correctness'):.2f} ({run.last('test/attention_correctness_uniform'):.2f})"
        entropy = "-" if temporal == "mean" else f"{run.last('test/attention_entropy'):.2f}"
        name = "mean-pool (no temporal attention)" if temporal == "mean" else "temporal attention"
        lines.append(f"| {name} | {100 * run.last('test/bleu4'):.1f} | {run.last('test/cider'):.2f} | {correctness} "
                     f"| {entropy} | {run.median('perf/train_samples_per_sec'):.0f} | {run.wall_minutes:.1f} | "
                     f"{run.peak_rss_gib:.2f} |")
        print(lines[-1], flush=True)
    title = (f"Video captioning benchmark, {training_runs.machine()}. Data: generated event clips (1,500 train x 3 "
             f"captions, 150 val, 300 test; 16 frames of 32x32, 2 events each); {args.epochs} epochs each, defaults of "
             f"configs/task/video_captioning.yaml; uniform attention over 16 frames = {math.log(16):.2f} nats.")
    training_runs.write_report(title, "video_captioning.py", lines, args.out)


if __name__ == "__main__":
    main()
