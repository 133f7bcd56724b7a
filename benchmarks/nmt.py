"""Translation on the generated number phrases: attention kinds side by side, greedy vs beam, decoding speed.

    python benchmarks/nmt.py                               # the full table (about 10 CPU minutes here)
    python benchmarks/nmt.py --epochs 1 --train-pairs 2000  # a quick pass

1. Quality at the same budget: `train.py task=nmt` once per attention kind (bahdanau, luong_dot, luong_general),
   same data (English -> French cardinals, ordinals and years, numbers disjoint across splits), same epochs:
   test BLEU (sacreBLEU 13a, beam search), perplexity, seconds per epoch.
2. Greedy vs beam: the trained Bahdanau model's test BLEU both ways.
3. Decoding speed: its test sentences, batched beam search vs the same search one sentence at a time (same
   outputs required), and greedy vs beam width 1.
Writes benchmarks/results/nmt.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torchmetrics.text import SacreBLEUScore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import beam_search as beam_benchmark  # noqa: E402
from benchmarks import training_runs  # noqa: E402
from datamodules.translation import TranslationDataModule  # noqa: E402
from suite.configs import task_datamodule  # noqa: E402
from tasks.nmt import TranslationModel  # noqa: E402

KINDS = ("bahdanau", "luong_dot", "luong_general")
FORMS = "[cardinal,ordinal,year]"


def data_overrides(train_pairs: int) -> list[str]:
    return [f"data.sizes.train={train_pairs}", f"data.forms={FORMS}"]


def quality_rows(epochs: int, train_pairs: int, overrides: list[str], runs_dir: Path
                 ) -> tuple[list[str], dict[str, Path]]:
    lines = ["| attention | test BLEU (beam 5) | test perplexity | val BLEU after epoch 1 | s per epoch "
             "| train pairs/s | peak RSS GiB |", "|---|---|---|---|---|---|---|"]
    checkpoints = {}
    for kind in KINDS:
        run = training_runs.run_training("nmt", kind, [f"model.attention={kind}", f"trainer.max_epochs={epochs}",
                                                       *data_overrides(train_pairs), *overrides], runs_dir)
        checkpoints[kind] = run.best_checkpoint()
        lines.append(f"| {kind} | {run.last('test/bleu'):.1f} | {run.last('test/perplexity'):.3f} | "
                     f"{run.column('val/bleu')[0]:.1f} | {run.median('perf/epoch_seconds'):.0f} | "
                     f"{run.median('perf/train_samples_per_sec'):.0f} | {run.peak_rss_gib:.2f} |")
        print(lines[-1], flush=True)
    return lines, checkpoints


def test_batches(model: TranslationModel, train_pairs: int, batch: int) -> TranslationDataModule:
    data = task_datamodule("nmt", sizes={"train": train_pairs, "val": 10, "test": 1000},
                           forms=FORMS[1:-1].split(","), eval_batch_size=batch, num_workers=0, seed=42)
    data._vocabularies = (model.source_vocabulary, model.target_vocabulary)  # the checkpoint's tokenisers
    data.setup("test")
    return data


def greedy_vs_beam_rows(checkpoint: Path, train_pairs: int, kind: str = "bahdanau") -> list[str]:
    model = TranslationModel.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    data = test_batches(model, train_pairs, 128)
    lines = [f"| decoding ({kind}) | test BLEU | seconds for 1,000 sentences |", "|---|---|---|"]
    for decode in ("greedy", "beam"):
        bleu = SacreBLEUScore(tokenize="13a")
        start = time.perf_counter()
        for batch in data.test_dataloader():
            hypotheses = model.generate(batch["source"], batch["source_lengths"], decode=decode)
            bleu.update([model.target_vocabulary.decode(h.tokens) for h in hypotheses],
                        [[r] for r in batch["references"]])
        label = "greedy" if decode == "greedy" else f"beam {model.hparams.beam_size}"
        lines.append(f"| {label} | {100 * float(bleu.compute()):.2f} | {time.perf_counter() - start:.2f} |")
        print(lines[-1], flush=True)
    return lines


def decoding_speed_rows(checkpoint: Path, train_pairs: int, batch: int, beam: int, repeats: int) -> list[str]:
    model = TranslationModel.load_from_checkpoint(checkpoint, weights_only=True, map_location="cpu").eval()
    source = next(iter(test_batches(model, train_pairs, batch).test_dataloader()))
    with torch.no_grad():
        encoded = model.encode(source["source"], source["source_lengths"])
    max_len = min(model.hparams.max_decode_len, 2 * int(source["source_lengths"].max()) + 10)
    vocab = model.target_vocabulary
    beam_row, greedy_row = beam_benchmark.measure(
        model.decoder, batch, beam, max_len, repeats, length_penalty=model.hparams.length_penalty,
        memory=encoded.states, memory_mask=encoded.mask, bos=vocab.bos_id, eos=vocab.eos_id)
    return beam_benchmark.format_table([beam_row], [greedy_row]).splitlines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--train-pairs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=64, help="sentences decoded together in the speed comparison")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "nmt")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "nmt.md")
    parser.add_argument("--redecode", type=Path, default=None, metavar="RUN_DIR",
                        help="skip training: greedy vs beam test BLEU of each kind's best checkpoint in RUN_DIR (a "
                             "run of this script; give its --train-pairs), and the speed comparison, decoded by "
                             "the current code")
    parser.add_argument("overrides", nargs="*", help="extra train.py overrides for every run")
    args = parser.parse_args()
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    if args.redecode is not None:
        lines = []
        for kind in KINDS:
            best = training_runs.best_checkpoint(args.redecode / kind / "checkpoints")
            lines += [*([""] if lines else []), *greedy_vs_beam_rows(best, args.train_pairs, kind)]
        lines += ["", f"Decoding {args.batch} test sentences of the Bahdanau model, beam {args.beam} (median of "
                  f"{args.repeats}):", ""]
        lines += decoding_speed_rows(training_runs.best_checkpoint(args.redecode / "bahdanau" / "checkpoints"),
                                     args.train_pairs, args.batch, args.beam, args.repeats)
        title = (f"Translation models of {args.redecode} ({args.train_pairs:,} training pairs) decoded again, "
                 f"{training_runs.machine()}.")
        training_runs.write_report(title, "nmt.py", lines, args.out)
        return

    lines, checkpoints = quality_rows(args.epochs, args.train_pairs, args.overrides, runs_dir)
    lines += [""] + greedy_vs_beam_rows(checkpoints["bahdanau"], args.train_pairs)
    lines += ["", f"Decoding {args.batch} test sentences of the trained Bahdanau model, beam {args.beam} "
              f"(median of {args.repeats}):", ""]
    lines += decoding_speed_rows(checkpoints["bahdanau"], args.train_pairs, args.batch, args.beam, args.repeats)
    title = (f"Translation benchmark, {training_runs.machine()}. Data: English -> French number phrases "
              f"(num2words; cardinals, ordinals and years; {args.train_pairs:,} training pairs, 500 val, 1,000 test, "
              f"numbers disjoint across splits), BPE tokenisers; {args.epochs} epochs per attention kind, "
              "defaults of configs/task/nmt.yaml.")
    training_runs.write_report(title, "nmt.py", lines, args.out)


if __name__ == "__main__":
    main()
