"""Video captioning on the generated event clips: the mean-pool baseline vs temporal attention, same budget.

    python benchmarks/video_captioning.py                # about 12 CPU minutes here
    python benchmarks/video_captioning.py --epochs 1     # a quick pass
    python benchmarks/video_captioning.py --feature-cache   # training throughput with and without cached frame features

Each configuration is one `train.py task=video_captioning` run: test BLEU-4 and CIDEr-D of beam-searched captions,
temporal attention correctness (attention mass on the frames of the event a word names, next to uniform weights'),
attention entropy, throughput (clips/s) and memory. Writes benchmarks/results/video_captioning.md.

``--feature-cache``: training throughput of the trained conv encoder, of a frozen ResNet-18 run on every frame
of every batch, and of the same frozen encoder with ``model.cache_features=true`` (every clip's frames encoded
once, then looked up); writes benchmarks/results/video_feature_cache.md.
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

# small per-frame features: a 2x2 grid mean-pooled per frame is enough for the generated clips
RESNET18 = ["model.encoder.arch=resnet18", "model.encoder.grid_size=2"]
CACHE_RUNS = (
    ("conv encoder, trained (default)", []),
    ("ResNet-18 frozen, encoded every step", ["model/encoder=resnet", *RESNET18]),
    ("ResNet-18 frozen, cached features", ["model/encoder=resnet", *RESNET18, "model.cache_features=true"]),
)


def feature_cache_throughput(args: argparse.Namespace, runs_dir: Path) -> None:
    """Training clips/s of each CACHE_RUNS configuration: the first epoch (which builds the cache) and the last."""
    lines = ["| frames -> features | first epoch clips/s (builds the cache) | later epochs clips/s | test CIDEr-D "
             "| wall min | peak RSS GiB |", "|---|---|---|---|---|---|"]
    for name, overrides in CACHE_RUNS:
        run = training_runs.run_training("video_captioning", f"cache_run{len(lines) - 2}",
                                         [f"trainer.max_epochs={args.epochs}", *overrides, *args.overrides], runs_dir)
        speeds = run.column("perf/train_samples_per_sec")
        lines.append(f"| {name} | {speeds[0]:.0f} | {sum(speeds[1:]) / max(len(speeds) - 1, 1):.0f} | "
                     f"{run.last('test/cider'):.2f} | {run.wall_minutes:.1f} | {run.peak_rss_gib:.2f} |")
        print(lines[-1], flush=True)
    title = (f"Video captioning: training throughput with and without cached frame features, "
             f"{training_runs.machine()}. "
             f"Data: generated event clips (1,500 train x 3 captions; 16 frames of 32x32), {args.epochs} epochs each; "
             f"the ResNet-18 is not pretrained (no download here), so its CIDEr-D says nothing about pretrained "
             f"features, only that the cached run learns the same as the uncached one.")
    training_runs.write_report(title, "video_captioning.py", lines, args.out.with_name("video_feature_cache.md"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "video_captioning")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video_captioning.md")
    parser.add_argument("--feature-cache", action="store_true",
                        help="measure training throughput with and without cached frame features instead")
    parser.add_argument("--redecode", type=Path, default=None, metavar="RUN_DIR",
                        help="skip training: test the mean and attention checkpoints of RUN_DIR (a run of this "
                             "script) again with the current code")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    if args.feature_cache:
        feature_cache_throughput(args, runs_dir)
        return
    if args.redecode is not None:
        lines = ["| model | BLEU-4 | CIDEr-D | temporal attention correctness (uniform) | attention entropy nats |",
                 "|---|---|---|---|---|"]
        for temporal in ("mean", "attention"):
            m = training_runs.retest("video_captioning",
                                     training_runs.best_checkpoint(args.redecode / temporal / "checkpoints"))
            attended = temporal == "attention"
            lines.append(f"| {temporal} | {100 * m['test/bleu4']:.1f} | {m['test/cider']:.2f} | "
                         + (f"{m['test/attention_correctness']:.2f} ({m['test/attention_correctness_uniform']:.2f}) "
                            f"| {m['test/attention_entropy']:.2f} |" if attended else "- | - |"))
            print(lines[-1], flush=True)
        title = (f"Video captioning models of {args.redecode} tested again by the current code, "
                 f"{training_runs.machine()}.")
        training_runs.write_report(title, "video_captioning.py", lines, args.out)
        return
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
