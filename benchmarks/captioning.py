"""Show, Attend and Tell on the generated scenes: soft vs hard attention side by side, and decoding speed.

    python benchmarks/captioning.py                         # the full table (about 20 CPU minutes here)
    python benchmarks/captioning.py --epochs 1 --throughput-batches 0   # a quick pass
    python benchmarks/captioning.py --decode-checkpoint RUN/soft/checkpoints/last.ckpt --out /tmp/decoding.md
                                                            # decoding comparison only, on a trained model

1. Quality: for soft and for hard attention, one `train.py task=captioning` run each (same data, same budget),
   tested on the 1,000 test scenes with batched beam search: BLEU-1/4, CIDEr-D, attention correctness (the
   attention mass of each word that names an object inside that object's box, next to a uniform map's) and the
   mean entropy of the attention maps of emitted words (ln 64 = 4.16 nats is uniform over the 8x8 grid).
2. Decoding: the trained soft model's test images, batched beam search vs the same search one sample at a time
   (same outputs required), and greedy vs beam width 1.
3. Training throughput (images/s) in 32-true and bf16-mixed.
Writes benchmarks/results/captioning.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import beam_search as beam_benchmark  # noqa: E402
from benchmarks import training_runs  # noqa: E402
from suite.configs import task_datamodule  # noqa: E402
from tasks.captioning import ImageCaptioner  # noqa: E402

PAPER = "Xu et al. 2015 (Flickr8k / COCO BLEU-4): soft 19.5 / 24.3, hard 21.3 / 25.0"


def quality_rows(epochs: int, overrides: list[str], runs_dir: Path) -> tuple[list[str], dict[str, Path]]:
    lines = ["| attention | BLEU-1 | BLEU-4 | CIDEr-D | attention correctness (uniform) | attention entropy nats "
             "| train images/s | wall min | peak RSS GiB |", "|---|---|---|---|---|---|---|---|---|"]
    checkpoints = {}
    for attention in ("soft", "hard"):
        run = training_runs.run_training("captioning", attention, [f"model.attention={attention}",
                                                                   f"trainer.max_epochs={epochs}", *overrides],
                                         runs_dir)
        checkpoints[attention] = run.best_checkpoint()
        lines.append(
            f"| {attention} | {100 * run.last('test/bleu1'):.1f} | {100 * run.last('test/bleu4'):.1f} | "
            f"{run.last('test/cider'):.2f} | {run.last('test/attention_correctness'):.2f} "
            f"({run.last('test/attention_correctness_uniform'):.2f}) | {run.last('test/attention_entropy'):.2f} | "
            f"{run.median('perf/train_samples_per_sec'):.0f} | {run.wall_minutes:.1f} | {run.peak_rss_gib:.2f} |")
        print(lines[-1], flush=True)
    return lines, checkpoints


def decoding_rows(checkpoint: Path, batch: int, beam: int, repeats: int) -> list[str]:
    """Batched vs per-sample beam search (and greedy vs width 1) on the trained model's test images."""
    model = ImageCaptioner.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    data = task_datamodule("captioning", num_images={"train": 1, "val": 1, "test": batch}, eval_batch_size=batch,
                           num_workers=0, seed=42)
    data.setup("test")
    images = next(iter(data.test_dataloader()))["image"]
    with torch.no_grad():
        memory = model.encoder(images)                                                        # [B, N, D]
    vocab = model.vocabulary
    beam_row, greedy_row = beam_benchmark.measure(model.decoder, batch, beam, model.hparams.max_decode_len,
                                                  repeats, length_penalty=model.hparams.length_penalty,
                                                  memory=memory, bos=vocab.bos_id, eos=vocab.eos_id)
    return beam_benchmark.format_table([beam_row], [greedy_row]).splitlines()


def redecoded_rows(run_dir: Path) -> list[str]:
    """The soft and hard models of an earlier run of this script tested again (test split, the task config's data
    and seed 42) by the current decoding code."""
    lines = ["| attention | BLEU-1 | BLEU-4 | CIDEr-D | attention correctness (uniform) | attention entropy nats |",
             "|---|---|---|---|---|---|"]
    for attention in ("soft", "hard"):
        m = training_runs.retest("captioning", training_runs.best_checkpoint(run_dir / attention / "checkpoints"))
        lines.append(f"| {attention} | {100 * m['test/bleu1']:.1f} | {100 * m['test/bleu4']:.1f} | "
                     f"{m['test/cider']:.2f} | {m['test/attention_correctness']:.2f} "
                     f"({m['test/attention_correctness_uniform']:.2f}) | {m['test/attention_entropy']:.2f} |")
        print(lines[-1], flush=True)
    return lines


def throughput_rows(batches: int, overrides: list[str], runs_dir: Path) -> list[str]:
    lines = [f"| precision (soft, {batches} training batches of 64) | train images/s |", "|---|---|"]
    for precision in ("32-true", "bf16-mixed"):
        run = training_runs.run_training("captioning", f"throughput-{precision}", [
            f"trainer.precision={precision}", "trainer.max_epochs=1", f"trainer.limit_train_batches={batches}",
            "trainer.limit_val_batches=0", "test=false", *overrides], runs_dir)
        lines.append(f"| {precision} | {run.median('perf/train_samples_per_sec'):.0f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6, help="training epochs of the soft and the hard run")
    parser.add_argument("--batch", type=int, default=64, help="images decoded together in the decoding comparison")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput-batches", type=int, default=150, help="0: skip the precision comparison")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "captioning")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "captioning.md")
    parser.add_argument("--decode-checkpoint", type=Path, default=None,
                        help="skip training: only the decoding comparison, on this trained soft checkpoint")
    parser.add_argument("--redecode", type=Path, default=None, metavar="RUN_DIR",
                        help="skip training: test the soft and hard checkpoints of RUN_DIR (a run of this script) "
                             "again with the current decoding code")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    if args.redecode is not None:
        title = (f"Captioning models of {args.redecode} tested again by the current decoding code, "
                 f"{training_runs.machine()}. Data: generated scenes (1,000 test images), beam of the checkpoint.")
        training_runs.write_report(title, "captioning.py", redecoded_rows(args.redecode), args.out)
        return
    if args.decode_checkpoint is not None:
        lines = decoding_rows(args.decode_checkpoint, args.batch, args.beam, args.repeats)
        title = (f"Captioning decoding, {training_runs.machine()}: {args.batch} generated test scenes, beam "
                 f"{args.beam} (median of {args.repeats}), trained model {args.decode_checkpoint}.")
        training_runs.write_report(title, "captioning.py", lines, args.out)
        return

    lines, checkpoints = quality_rows(args.epochs, args.overrides, runs_dir)
    lines += ["", f"Decoding {args.batch} test images of the trained soft model, beam {args.beam} "
              f"(median of {args.repeats}):", ""]
    lines += decoding_rows(checkpoints["soft"], args.batch, args.beam, args.repeats)
    if args.throughput_batches:
        lines += [""] + throughput_rows(args.throughput_batches, args.overrides, runs_dir)

    title = (f"Captioning benchmark, {training_runs.machine()}. Data: generated scenes (4,000 train images x 5 "
              f"captions, 500 val, 1,000 test; 64x64, 8x8 attention grid); uniform attention entropy = "
              f"ln 64 = {math.log(64):.2f} nats. Paper reference points: {PAPER}.")
    training_runs.write_report(title, "captioning.py", lines, args.out)


if __name__ == "__main__":
    main()
