"""DRAW at an equal budget: generation with attention vs full read/write vs a plain VAE (negative log-likelihood
bound), and classification of cluttered digits by a CNN, the ST-CNN and DRAW's read attention (error and IoU).

    python benchmarks/draw.py                                   # both tables (the budgets in --epochs)
    python benchmarks/draw.py --part generate --epochs 4 4      # a quick pass of the generation table
    python benchmarks/draw.py --part generate --generators attention full --epochs 20 0 model.steps=64
                                                                # the paper's T=64, attention vs whole images

Every row is one `train.py` run (CSV logger) in its own process; rows of a table train for the same number of
epochs on the same split. Prints markdown tables and writes them to benchmarks/results/draw.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402

GENERATORS = {  # id -> (name, train.py overrides of task=draw)
    "attention": ("DRAW, attention read 5x5 + write 5x5 (default)", []),
    "attention_read2": ("DRAW, attention read 2x2 (the paper's) + write 5x5", ["model.read_size=2"]),
    "full": ("DRAW, full read + full write", ["model.read=full", "model.write=full"]),
    "vae": ("plain VAE (one step, full)", ["model.steps=1", "model.read=full", "model.write=full"]),
}
CLASSIFIERS = {  # name -> (task, overrides, extra overrides on cluttered canvases)
    "CNN": ("stn", ["model.arch=cnn"], []),
    "ST-CNN": ("stn", ["model.arch=st_cnn"], ["model.st_out_size=40", "model.loc_init_scale=0.5"]),
    "DRAW read attention (12x12, 8 glimpses)": ("draw", ["experiment=draw_classify_cluttered"], []),
}
PAPER = ("Gregor et al. 2015 (binarised MNIST, 60,000 training digits, T=64): -log p(x) <= 80.97 nats with "
         "attention, 87.40 without; 100x100 cluttered MNIST: 3.36% error with read attention.")


def parameter_count(run_dir: Path) -> str:
    """The ``params/total`` train.py logged with the hyperparameters (csv/hparams.yaml), as "1,234,567"."""
    for line in (run_dir / "csv" / "hparams.yaml").read_text().splitlines():
        if line.startswith("params/total:"):
            return f"{int(line.split(':')[1]):,}"
    return "-"


def generation_table(epochs: int, variants: list[str], runs_dir: Path, extra: list[str]) -> list[str]:
    lines = ["| model | parameters | test NLL bound (nats) | test importance-weighted (K=50) | reconstruction | KL "
             "| epochs | wall min | peak GiB |", "|---|---|---|---|---|---|---|---|---|"]
    for variant in variants:
        name, overrides = GENERATORS[variant]
        run = training_runs.run_training(
            "draw", f"generate_{variant}", [*overrides, f"trainer.max_epochs={epochs}",
                                              "model.importance_samples=50", *extra], runs_dir)
        params = parameter_count(run.run_dir)
        lines.append(f"| {name} | {params} | {run.last('test/nll_bound'):.2f} | {run.last('test/nll_iw'):.2f} | "
                     f"{run.last('test/reconstruction'):.2f} | {run.last('test/kl'):.2f} | {epochs} | "
                     f"{run.wall_minutes:.1f} | {run.peak_rss_gib:.2f} |")
    return lines


def classification_table(epochs: int, distortion: str, runs_dir: Path, extra: list[str]) -> list[str]:
    lines = ["| model | test error % | test IoU with the digit box (whole canvas) | epochs | wall min | peak GiB |",
             "|---|---|---|---|---|---|"]
    for name, (task, overrides, cluttered) in CLASSIFIERS.items():
        settings = [*overrides, f"data.distortion={distortion}", *(cluttered if distortion == "cluttered" else [])]
        run = training_runs.run_training(task, f"classify_{distortion}_{len(lines)}",
                                         [*settings, f"trainer.max_epochs={epochs}", *extra], runs_dir)
        iou = run.last("test/iou")
        lines.append(f"| {name} | {100 * run.last('test/error'):.1f} | "
                     f"{'-' if iou != iou else f'{iou:.2f}'} ({run.last('test/iou_identity'):.2f}) | {epochs} | "
                     f"{run.wall_minutes:.1f} | {run.peak_rss_gib:.2f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["generate", "classify", "both"], default="both")
    parser.add_argument("--epochs", type=int, nargs=2, default=[30, 30], metavar=("GENERATE", "CLASSIFY"))
    parser.add_argument("--generators", nargs="+", default=list(GENERATORS), choices=list(GENERATORS),
                        help="rows of the generation table")
    parser.add_argument("--distortions", nargs="+", default=["cluttered"], choices=["cluttered", "rts"],
                        help="canvases of the classification table(s)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "outputs" / "benchmarks" / "draw")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "draw.md")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run (model.steps=64)")
    args = parser.parse_args()
    extra = [f"seed={args.seed}", *args.overrides]
    lines = [f"Machine: {training_runs.machine()}", "", PAPER, ""]
    if args.part in ("generate", "both"):
        lines += ["Generation, the embedded 5,000 digits (3,600 train / 400 val / 1,000 test), stochastically "
                  "binarised:", "", *generation_table(args.epochs[0], args.generators, args.runs_dir, extra), ""]
    for distortion in args.distortions if args.part in ("classify", "both") else []:
        canvas = "60x60 cluttered" if distortion == "cluttered" else "42x42 RTS (rotated, scaled, translated)"
        lines += [f"Classification, {canvas} canvases of the same digits:", "",
                  *classification_table(args.epochs[1], distortion, args.runs_dir, extra), ""]
    training_runs.write_report("# DRAW: attention vs whole-image read/write, and three attention classifiers",
                               "draw.py", lines, args.out)


if __name__ == "__main__":
    main()
