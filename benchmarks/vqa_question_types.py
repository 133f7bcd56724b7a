"""How SAN learns each kind of Sort-of-CLEVR question: train on a subset of question types and watch each type's
accuracy and where the attention goes (every hop's mass on the named object).

    python benchmarks/vqa_question_types.py                              # "shape" alone, then shape + position
    python benchmarks/vqa_question_types.py --types shape,horizontal --steps 3000 --score multiplicative
    python benchmarks/vqa_question_types.py --coordinates --types shape,horizontal,vertical \
        --first-types shape --first-steps 750                            # a curriculum: shape questions first

One in-process run per ``--types`` set (SAN from configs/task/vqa.yaml with the paper's one-way question LSTM, 1 hop
unless --hops, AdamW at a constant learning rate or, with --cosine, warm-up then cosine decay; batches drawn from
the questions of those types over 5,000 training images). Every ``--every`` steps: validation accuracy per type
(300 images) and the attention mass on the object the question names, next to a uniform map's. Writes
benchmarks/results/vqa_question_types.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402
from datamodules.vqa import VQADataModule  # noqa: E402
from metrics.attention_correctness import box_cell_cover  # noqa: E402
from suite.configs import task_datamodule, task_model  # noqa: E402
from tasks.vqa import StackedAttentionVQA  # noqa: E402


def evaluate(model: StackedAttentionVQA, dataset, indices: list[int], collate) -> tuple[dict[str, float], list[float],
                                                                                        float]:
    """(accuracy per question type, attention mass of each hop on the named object, a uniform map's)."""
    model.eval()
    correct, total, mass, uniform = Counter(), Counter(), [], []
    with torch.no_grad():
        for start in range(0, len(indices), 256):
            chunk = indices[start:start + 256]
            batch = collate(dataset.__getitems__(chunk))
            logits, maps = model(batch["image"], batch["question"], batch["question_lengths"])
            right = (logits.argmax(-1) == batch["answer"]).tolist()
            for i, ok in zip(chunk, right, strict=True):
                kind = dataset.questions[i].type
                total[kind] += 1
                correct[kind] += ok
            cover = box_cell_cover(batch["about_boxes"][:, :1], model.grid)[:, 0].clamp(max=1)   # [B, N] named object
            mass.append(torch.stack([(hop * cover).sum(-1) for hop in maps], dim=1))   # [B, hops]
            uniform.append(cover.mean(-1))
    model.train()
    return ({kind: correct[kind] / total[kind] for kind in sorted(total)}, torch.cat(mass).mean(0).tolist(),
            float(torch.cat(uniform).mean()))


def model_options(pairs: list[str]) -> dict[str, object]:
    """["score=multiplicative", "dim=128"] -> {"score": "multiplicative", "dim": 128} (YAML-typed values)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--model expects KEY=VALUE, got {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


def train_types(types: set[str], args: argparse.Namespace, datamodule: VQADataModule) -> list[str]:
    train, val = datamodule._dataset("train"), datamodule._dataset("val")
    collate = datamodule._loader("val", False).collate_fn
    train_ids = [i for i, q in enumerate(train.questions) if q.type in types]
    first = set(args.first_types.split(",")) if args.first_types else types
    first_ids = [i for i, q in enumerate(train.questions) if q.type in first]
    val_ids = [i for i, q in enumerate(val.questions) if q.type in types]
    torch.manual_seed(args.seed)
    provided = {"question_vocabulary": datamodule.question_vocabulary, "answers": datamodule.answers,
                "image_size": datamodule.image_size}
    # the paper's one-way question LSTM, as in the results this probe wrote (benchmarks/results/vqa_question_types.md)
    model = task_model("vqa", provided, hops=args.hops, score=args.score, coordinates=args.coordinates, dropout=0.0,
                       **{"question_bidirectional": False, **model_options(args.model)})
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    warmup = max(1, args.steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (
        1.0 if not args.cosine else min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / args.steps))))
    generator = torch.Generator().manual_seed(args.seed)
    rows, start = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        pool = first_ids if step <= args.first_steps else train_ids
        picked = torch.randint(len(pool), (args.batch_size,), generator=generator).tolist()
        batch = collate(train.__getitems__([pool[i] for i in picked]))
        logits, _ = model(batch["image"], batch["question"], batch["question_lengths"])
        loss = model._loss(logits, batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        schedule.step()
        if step % args.every == 0:
            accuracy, mass, uniform = evaluate(model, val, val_ids, collate)
            per_type = ", ".join(f"{kind} {100 * value:.0f}" for kind, value in accuracy.items())
            masses = ", ".join(f"{hop:.3f}" for hop in mass)
            rows.append(f"| {'+'.join(sorted(types))} | {step} | {per_type} | {masses} ({uniform:.3f}) | "
                        f"{time.perf_counter() - start:.0f} |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", nargs="+", default=["shape", "shape,horizontal,vertical"],
                        help="comma-separated question types per run")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--every", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--cosine", action="store_true", help="warm-up (5%%) then cosine decay to 0 over --steps "
                        "instead of a constant learning rate")
    parser.add_argument("--hops", type=int, default=1)
    parser.add_argument("--score", default="additive")
    parser.add_argument("--coordinates", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE",
                        help="other StackedAttentionVQA options, e.g. classifier_hidden=256")
    parser.add_argument("--first-types", default="", help="curriculum: train on these types only at first")
    parser.add_argument("--first-steps", type=int, default=0, help="curriculum: for this many steps")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "vqa_question_types.md")
    args = parser.parse_args()
    # the probe draws its own batches of the types it studies: no curriculum sampler
    datamodule = task_datamodule("vqa", num_images={"train": 5000, "val": 300, "test": 10}, batch_size=args.batch_size,
                                 num_workers=0, seed=42, curriculum_questions=0)
    datamodule.setup("fit")
    lines = ["| question types | step | val accuracy % per type | attention on the named object, per hop (uniform) | "
             "seconds |", "|---|---|---|---|---|"]
    for types in args.types:
        lines += train_types(set(types.split(",")), args, datamodule)
    title = (f"SAN on subsets of Sort-of-CLEVR question types, {training_runs.machine()}. {args.hops} hop(s), "
             f"{args.score} attention, coordinates {'on' if args.coordinates else 'off'}, AdamW lr {args.lr} "
             f"{'warm-up + cosine' if args.cosine else 'constant'}, batch {args.batch_size}; 5,000 training images, "
             "300 validation images"
             + (f"; curriculum: only {args.first_types} questions for the first {args.first_steps} steps."
                if args.first_types and args.first_steps else ".")
             + (f" Model options: {' '.join(args.model)}." if args.model else ""))
    training_runs.write_report(title, "vqa_question_types.py", lines, args.out)


if __name__ == "__main__":
    main()
