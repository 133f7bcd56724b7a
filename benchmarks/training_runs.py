"""Run train.py as a user would (one process per configuration) and read back what its CSV logger wrote."""

from __future__ import annotations

import csv
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from suite.precision import cpu_has_native_bf16, cpu_model_name

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class TrainingRun:
    """One finished train.py run: its metrics.csv rows, wall time and peak memory."""

    run_dir: Path
    rows: list[dict[str, str]]
    wall_minutes: float
    peak_rss_gib: float

    def column(self, key: str) -> list[float]:
        """Every logged value of a metric, in order."""
        return [float(row[key]) for row in self.rows if row.get(key)]

    def last(self, key: str, default: float = float("nan")) -> float:
        values = self.column(key)
        return values[-1] if values else default

    def median(self, key: str) -> float:
        values = sorted(self.column(key))
        return values[len(values) // 2] if values else float("nan")

    def best_checkpoint(self) -> Path:
        return best_checkpoint(self.run_dir / "checkpoints")


def retest(task: str, checkpoint: Path, seed: int = 42) -> dict[str, float]:
    """Test a checkpoint again with the current code on its task's embedded data (configs/task/<task>.yaml's data
    settings, the run's seed, the checkpoint's own tokeniser) -> the test metrics. The model class and data come
    from the task config, not from the checkpoint's saved config (whose data settings may be older)."""
    import hydra
    import pytorch_lightning as pl
    from omegaconf import OmegaConf

    config = OmegaConf.load(ROOT / "configs" / "task" / f"{task}.yaml")
    model = hydra.utils.get_class(config.model._target_).load_from_checkpoint(checkpoint, weights_only=True,
                                                                              map_location="cpu")
    data_settings = {**OmegaConf.to_container(config.data), "seed": seed, "num_workers": 0}
    data = hydra.utils.instantiate(data_settings)
    data.adopt_vocabularies({data.vocabulary_name: getattr(model, data.vocabulary_name)})
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    return trainer.test(model, datamodule=data, verbose=False)[0]


def best_checkpoint(folder: Path) -> Path:
    """The best checkpoint train.py kept in a run's checkpoints/ folder (epoch*.ckpt; last.ckpt is the last)."""
    found = sorted(folder.glob("epoch*.ckpt"))
    if not found:
        raise FileNotFoundError(f"no epoch*.ckpt (the best checkpoint) in {folder}")
    return found[0]


def run_training(task: str, name: str, overrides: list[str], runs_dir: Path, trainer: str = "cpu") -> TrainingRun:
    """`python train.py task=<task> trainer=<trainer> logger=csv ... <overrides>` in its own process (so the peak
    RSS is its own)."""
    run_dir = runs_dir / name
    command = [sys.executable, str(ROOT / "benchmarks" / "measure.py"), str(ROOT / "train.py"), f"task={task}",
               f"trainer={trainer}", "logger=csv", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
               *overrides]
    print("$ python", shlex.join(command[2:]), flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"{name} failed:\n{stderr[-3000:]}")
    return TrainingRun(run_dir, read_metrics(run_dir), wall / 60, peak_rss_gib(stderr))


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of the metrics.csv that train.py's CSV logger wrote in a run directory."""
    with open(run_dir / "csv" / "metrics.csv", newline="") as file:
        return list(csv.DictReader(file))


def peak_rss_gib(stderr: str) -> float:
    """benchmarks/measure.py prints the run's peak RSS on its last stderr line."""
    for line in reversed(stderr.splitlines()):
        if line.startswith("PEAK_RSS_KB="):
            return int(line.split("=")[1]) / 2**20
    return float("nan")


def cpu_description() -> str:
    """'AMD EPYC (x86_64, AVX2, no native bf16)': the CPU model (speeds differ by model far more than by core count)
    and whether bf16 autocast can be fast on it (suite.precision)."""
    model = cpu_model_name()
    bf16 = "native bf16" if cpu_has_native_bf16() else "no native bf16"
    return (f"{model + ' (' if model else ''}{platform.machine()}, {torch.backends.cpu.get_cpu_capability()}, {bf16}"
            f"{')' if model else ''}")


def machine() -> str:
    """'2026-11-27, AMD EPYC (x86_64, AVX2, no native bf16), 2 CPU cores, torch 2.14.1 (2 threads)'."""
    return (f"{time.strftime('%Y-%m-%d')}, {cpu_description()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__.split('+')[0]} ({torch.get_num_threads()} threads)")


def write_report(title: str, script: str, lines: list[str], out: Path, argv: list[str] | None = None) -> str:
    """Title line, the command that reproduces it (``argv``, default sys.argv[1:]), the table lines -> printed
    and written to ``out``."""
    arguments = sys.argv[1:] if argv is None else argv
    header = [title, f"Command: python benchmarks/{script} {shlex.join(arguments)}".rstrip(), ""]
    report = "\n".join(header + lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print("\n" + report)
    return report
