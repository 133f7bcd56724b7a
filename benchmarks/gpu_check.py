"""GPU check: every task trains and tests on CUDA (bf16-mixed), STN in 32-true and compiled, and beam search speed.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.md     # on a machine with a GPU

Each run is `train.py ... trainer=gpu logger=csv` in its own process (short: a few epochs), so this checks the CUDA
path, mixed precision, torch.compile and the throughput, not the final quality.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402

RUNS = [  # (name, task, overrides, metric to report)
    ("stn bf16-mixed", "stn", ["trainer.max_epochs=5"], "test/error"),
    ("stn 32-true", "stn", ["trainer.max_epochs=5", "trainer.precision=32-true", "model.channels_last=false"],
     "test/error"),
    ("stn bf16-mixed compile", "stn", ["trainer.max_epochs=5", "compile=true"], "test/error"),
    ("captioning soft bf16-mixed", "captioning", ["trainer.max_epochs=2", "trainer.precision=bf16-mixed"],
     "test/cider"),
    ("captioning hard bf16-mixed", "captioning", ["trainer.max_epochs=2", "trainer.precision=bf16-mixed",
                                                  "model.attention=hard"], "test/cider"),
    ("nmt bahdanau bf16-mixed", "nmt", ["trainer.max_epochs=1", "trainer.precision=bf16-mixed"], "test/bleu"),
    ("vqa san-2 bf16-mixed", "vqa", ["trainer.max_epochs=1", "trainer.precision=bf16-mixed"], "test/acc"),
    ("video_captioning attention bf16-mixed", "video_captioning", ["trainer.max_epochs=2",
                                                                   "trainer.precision=bf16-mixed"], "test/cider"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_check.md")
    parser.add_argument("--runs-dir", type=Path, default=Path("/tmp/gpu_check_runs"))
    parser.add_argument("--tasks", nargs="+", help="only these tasks (default: all)")
    parser.add_argument("--no-beam", action="store_true", help="skip the CUDA beam search comparison")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this check needs a GPU")
    lines = [f"GPU check, {time.strftime('%Y-%m-%d')}, {torch.cuda.get_device_name()}, torch {torch.__version__}.",
             "Command: python benchmarks/gpu_check.py", "",
             "| run | train samples/s (median epoch) | s per epoch | metric | wall s | peak host RSS GiB |",
             "|---|---|---|---|---|---|"]
    for name, task, overrides, metric in RUNS:
        if args.tasks and task not in args.tasks:
            continue
        try:
            run = training_runs.run_training(task, name.replace(" ", "_"), ["trainer.enable_model_summary=false",
                                                                          *overrides], args.runs_dir, trainer="gpu")
            lines.append(f"| {name} | {run.median('perf/train_samples_per_sec'):.0f} | "
                         f"{run.median('perf/epoch_seconds'):.1f} | {metric} {run.last(metric):.4f} | "
                         f"{60 * run.wall_minutes:.0f} | {run.peak_rss_gib:.2f} |")
        except SystemExit as failure:
            lines.append(f"| {name} | FAILED | | {str(failure).splitlines()[-1][:150]} | | |")
        print(lines[-1], flush=True)
    beam_out = args.out.with_name("beam_search_cuda.md")
    if not args.no_beam:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "beam_search.py"), "--device", "cuda",
                        "--sizes", "1", "64", "256", "--out", str(beam_out)], check=False)
    report = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
