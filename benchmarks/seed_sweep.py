"""Several configurations of one task over several seeds, several train.py processes at a time: is a difference
between configurations larger than the spread between seeds?

    python benchmarks/seed_sweep.py --task vqa --seeds 0 1 2 \\
        --config "baseline=model.hops=0" --config "san2=" \\
        --metrics test/acc test/acc_non_relational test/acc_relational --parallel 1
    python benchmarks/seed_sweep.py --task vqa --trainer gpu --parallel 6 ... common.override=value

``--config NAME=OVERRIDES``: OVERRIDES are train.py overrides separated by spaces (empty: the task's defaults).
Trailing arguments are overrides for every run. Each run is `train.py task=<task> trainer=<trainer> logger=csv
seed=<seed> ...` in its own process (``--threads`` torch threads each); a GPU is shared by the processes on it.
The table (one row per run, then mean / standard deviation / min / max per configuration) is rewritten after
every finished run, so an interrupted sweep keeps what it measured. ``--time-limit`` stops starting new runs
after that many seconds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402


@dataclass
class Job:
    config: str
    seed: int
    overrides: list[str]
    run_dir: Path
    process: subprocess.Popen | None = None
    stderr: IO[str] | None = None
    started: float = 0.0
    wall_s: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""


def parse_config(text: str) -> tuple[str, list[str]]:
    """'NAME=a=1 b=[x,y]' -> ('NAME', ['a=1', 'b=[x,y]'])."""
    name, separator, overrides = text.partition("=")
    if not separator or not name:
        raise SystemExit(f"--config {text!r}: expected NAME=OVERRIDES (OVERRIDES may be empty: 'defaults=')")
    return name, shlex.split(overrides)


def start(job: Job, task: str, trainer: str, threads: int) -> None:
    command = [sys.executable, str(ROOT / "train.py"), f"task={task}", f"trainer={trainer}", "logger=csv",
               "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", f"seed={job.seed}",
               f"hydra.run.dir={job.run_dir}", *job.overrides]
    print(f"[{time.strftime('%H:%M:%S')}] start {job.config} seed {job.seed}: python {shlex.join(command[1:])}",
          flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    job.run_dir.mkdir(parents=True, exist_ok=True)
    job.stderr = open(job.run_dir / "stderr.log", "w")  # noqa: SIM115 (closed in finish)
    job.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=job.stderr)
    job.started = time.perf_counter()


def finish(job: Job, metrics: list[str]) -> None:
    job.wall_s = time.perf_counter() - job.started
    if job.stderr is not None:
        job.stderr.close()
    if job.process is not None and job.process.returncode == 0:
        run = training_runs.TrainingRun(job.run_dir, training_runs.read_metrics(job.run_dir), job.wall_s / 60,
                                        float("nan"))
        job.metrics = {key: run.last(key) for key in metrics if run.column(key)}
    else:
        tail = (job.run_dir / "stderr.log").read_text(errors="replace").strip().splitlines()[-1:]
        job.error = f"exit {job.process.returncode if job.process else '?'}: {' '.join(tail)[:200]}"
    print(f"[{time.strftime('%H:%M:%S')}] done {job.config} seed {job.seed} in {job.wall_s:.0f} s: "
          f"{job.error or job.metrics}", flush=True)


def scaled(value: float, percent: bool) -> str:
    return f"{100 * value:.1f}" if percent else f"{value:.4f}"


def table(jobs: list[Job], configs: list[tuple[str, list[str]]], metrics: list[str], percent: bool) -> list[str]:
    unit = " %" if percent else ""
    lines = ["| configuration | seed | " + " | ".join(f"{m}{unit}" for m in metrics) + " | wall s |",
             "|---|---|" + "---|" * (len(metrics) + 1)]
    for job in jobs:
        if job.error:
            lines.append(f"| {job.config} | {job.seed} | FAILED: {job.error} |" + " |" * len(metrics))
        elif job.metrics:
            cells = " | ".join(scaled(job.metrics[m], percent) if m in job.metrics else "-" for m in metrics)
            lines.append(f"| {job.config} | {job.seed} | {cells} | {job.wall_s:.0f} |")
    lines += ["", "| configuration | overrides | runs | " + " | ".join(
        f"{m}{unit} mean ± sd (min - max)" for m in metrics) + " |", "|---|---|---|" + "---|" * len(metrics)]
    for name, overrides in configs:
        done = [job for job in jobs if job.config == name and job.metrics]
        cells = []
        for metric in metrics:
            values = [job.metrics[metric] for job in done if metric in job.metrics]
            if not values:
                cells.append("-")
                continue
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{scaled(statistics.mean(values), percent)} ± {scaled(spread, percent)} "
                         f"({scaled(min(values), percent)} - {scaled(max(values), percent)})")
        lines.append(f"| {name} | `{shlex.join(overrides) or '(defaults)'}` | {len(done)} | {' | '.join(cells)} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True)
    parser.add_argument("--config", action="append", required=True, help="NAME=OVERRIDES (repeatable)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--metrics", nargs="+", required=True, help="logged metrics to report (last value)")
    parser.add_argument("--percent", action="store_true", help="show metrics x 100")
    parser.add_argument("--trainer", default="cpu", help="trainer config (cpu | gpu | ...)")
    parser.add_argument("--parallel", type=int, default=1, help="train.py processes at a time")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="OMP_NUM_THREADS of each process")
    parser.add_argument("--time-limit", type=float, default=float("inf"), help="start no run after this many s")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "benchmarks" / "runs" / "seed_sweep")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "seed_sweep.md")
    parser.add_argument("overrides", nargs="*", help="train.py overrides for every run")
    args = parser.parse_args(argv)
    configs = [parse_config(text) for text in args.config]
    runs_dir = args.runs_dir / time.strftime("%Y-%m-%d_%H-%M-%S")
    # seed-major order, so an interrupted sweep has every configuration on the first seeds
    jobs = [Job(name, seed, [*overrides, *args.overrides], runs_dir / f"{name}_seed{seed}")
            for seed in args.seeds for name, overrides in configs]
    device = f" ({torch.cuda.get_device_name()})" if torch.cuda.is_available() and args.trainer != "cpu" else ""
    title = (f"Seed sweep, {training_runs.machine()}, trainer={args.trainer}{device}, {args.parallel} run(s) at a "
             f"time. Task {args.task}; every run also: `{shlex.join(args.overrides) or '(nothing)'}`.")
    sweep_start, waiting, running = time.perf_counter(), list(jobs), []
    while waiting or running:
        while waiting and len(running) < args.parallel and time.perf_counter() - sweep_start < args.time_limit:
            job = waiting.pop(0)
            start(job, args.task, args.trainer, args.threads)
            running.append(job)
        if not running:
            break
        time.sleep(1.0)
        for job in [job for job in running if job.process.poll() is not None]:
            running.remove(job)
            finish(job, args.metrics)
            training_runs.write_report(title, "seed_sweep.py", table(jobs, configs, args.metrics, args.percent),
                                       args.out)
    if waiting:
        print(f"time limit: {len(waiting)} run(s) not started", flush=True)


if __name__ == "__main__":
    main()
