"""Training-step time of the VQA model in each precision and memory format, side by side in one process.

    python benchmarks/vqa_step_time.py                 # 32-true / bf16-mixed x contiguous / channels_last
    python benchmarks/vqa_step_time.py --precisions 32-true   # e.g. on a CPU without native bf16 (the default there)
    python benchmarks/vqa_step_time.py --steps 50 --device cuda

The model and data are the task's defaults (configs/task/vqa.yaml, Sort-of-CLEVR batches of 64). Each setting
times forward + backward + AdamW step on the same prepared batches (data loading excluded), after warm-up steps;
the settings take turns so drift of the machine's speed affects them alike. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402
from suite.precision import has_native_bf16  # noqa: E402
from suite.run import datamodule_provided_kwargs  # noqa: E402

PRECISIONS = ("32-true", "bf16-mixed")


def prepare(device: str) -> tuple[Any, Any, list[dict]]:
    """The composed task config, its datamodule (Sort-of-CLEVR rendered once for every setting) and the first
    training batches on ``device``."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base=None):
        cfg = compose("train", overrides=["task=vqa", "logger=csv", "data.num_workers=0"])
    datamodule = hydra.utils.instantiate(cfg.data, _convert_="all")
    datamodule.setup("fit")
    batches = []
    for batch in datamodule.train_dataloader():
        batches.append({k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        if len(batches) == 8:
            break
    return cfg, datamodule, batches


def build(cfg: Any, datamodule: Any, channels_last: bool, device: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """The default VQA model (fixed seed, so every setting starts from the same weights) and its optimiser."""
    torch.manual_seed(0)
    model = hydra.utils.instantiate(cfg.model, **datamodule_provided_kwargs(cfg.model, datamodule),
                                    channels_last=channels_last).to(device).train()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-3)


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict, precision: str) -> None:
    device_type = batch["image"].device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
        logits, _ = model(batch["image"], batch["question"], batch["question_lengths"])
        loss = F.cross_entropy(logits.float(), batch["answer"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24, help="timed steps per setting")
    parser.add_argument("--rounds", type=int, default=3, help="turns: each setting runs steps / rounds per turn")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None,
                        help="default: both where the device computes bf16 natively, else 32-true only (emulated bf16 "
                             "can be 10-100x slower: suite/precision.py)")
    args = parser.parse_args()
    precisions = args.precisions or [p for p in PRECISIONS if p == "32-true" or has_native_bf16(args.device)]
    settings = [(precision, channels_last) for precision in precisions for channels_last in (False, True)]
    cfg, datamodule, batches = prepare(args.device)
    runs = {setting: build(cfg, datamodule, setting[1], args.device) for setting in settings}
    for (precision, _), (model, optimizer) in runs.items():
        for batch in batches[:3]:   # warm-up
            step(model, optimizer, batch, precision)
    seconds: dict[tuple[str, bool], list[float]] = {setting: [] for setting in settings}
    per_round = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for setting, (model, optimizer) in runs.items():
            for i in range(per_round):
                if args.device == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                step(model, optimizer, batches[i % len(batches)], setting[0])
                if args.device == "cuda":
                    torch.cuda.synchronize()
                seconds[setting].append(time.perf_counter() - start)
    batch_size = batches[0]["image"].size(0)
    base = statistics.median(seconds[settings[0]])
    print(f"VQA training step (forward + backward + AdamW, batch {batch_size}, data loading excluded), "
          f"{time.strftime('%Y-%m-%d')}, {training_runs.cpu_description()}, {args.device}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads); median of {per_round * args.rounds} steps per setting.")
    print(f"Command: python benchmarks/vqa_step_time.py {' '.join(sys.argv[1:])}".rstrip())
    print("\n| trainer.precision | model.channels_last | ms per step | questions/s | speed-up |\n|---|---|---|---|---|")
    for setting in settings:
        median = statistics.median(seconds[setting])
        print(f"| {setting[0]} | {str(setting[1]).lower()} | {1e3 * median:.1f} | {batch_size / median:,.0f} | "
              f"{base / median:.2f}x |")


if __name__ == "__main__":
    main()
