"""Shared fixtures: the real Hydra config, composed and shrunk for fast CPU runs."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# Overrides that make any task's run small: CPU, no worker processes, CSV logging, a couple of batches.
FAST = [
    "trainer=cpu",
    "logger=csv",
    "data.num_workers=0",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def compose_config(overrides: list[str], output_dir: Path) -> DictConfig:
    """Compose configs/train.yaml as train.py would, with this run's directory set to output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """make_cfg("task=stn", "model.arch=cnn") -> the composed, shrunk config (runs in tmp_path)."""

    def _make(*overrides: str, fast: bool = True) -> DictConfig:
        return compose_config([*(FAST if fast else []), *overrides], tmp_path / "run")

    yield _make
    GlobalHydra.instance().clear()


def run_cli(script: str, *args: str, cwd: Path, timeout: int = 300, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    """Run `python <script> args...` from the repository as a user would, capturing its output."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HYDRA_FULL_ERROR": "0",
                "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def metrics_one_process_and_ddp(common: list[str], keys: tuple[str, ...], cwd: Path,
                                     train_overrides: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """Train a tiny checkpoint with ``common`` train.py overrides (CSV logger), then test it in one process and
    in DDP on two CPU processes -> {"single": {key: value}, "ddp": {key: value}}, the last logged value of each
    of ``keys`` (metric columns of the CSV log)."""
    train = run_cli("train.py", *common, "trainer.max_epochs=1", "trainer.limit_val_batches=1", "test=false",
                    *train_overrides, "hydra.run.dir=fit", cwd=cwd)
    assert train.returncode == 0, train.stderr[-3000:]
    checkpoint = cwd / "fit" / "checkpoints" / "last.ckpt"
    metrics = {}
    for name, extra in [("single", []), ("ddp", ["trainer=ddp_cpu", "trainer.devices=2"])]:
        result = run_cli("train.py", *common, *extra, "train=false", f"ckpt_path={checkpoint}",
                         f"hydra.run.dir={name}", cwd=cwd)
        assert result.returncode == 0, result.stderr[-3000:]
        rows = list(csv.DictReader(open(cwd / name / "csv" / "metrics.csv")))
        metrics[name] = {key: float(next(row[key] for row in reversed(rows) if row.get(key))) for key in keys}
    return metrics


@pytest.fixture(scope="module")
def one_thread():
    """Tests of modules use tiny tensors: extra intra-op threads only add synchronisation (and slow down badly
    when the cores are busy), so each module runs on one thread and restores the setting after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextmanager
def raises_from_target(kind: type[Exception], match: str) -> Iterator[None]:
    """The error a task or datamodule raises for a bad option, through train.py's ``run`` (where Hydra's instantiate
    wraps it): its type and message are checked, not only the wrapper's."""
    with pytest.raises(InstantiationException) as wrapped:
        yield
    cause = wrapped.value.__cause__
    assert isinstance(cause, kind), f"expected {kind.__name__}, got {type(cause).__name__}: {cause}"
    assert re.search(match, str(cause)), f"{match!r} not in {cause}"


def count_compiled_scores(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the additive scores computed by the compiled fused kernel itself: a call that fails to compile (and
    falls back to the eager score) is not counted, so a test can tell the compiled path from the fallback."""
    import modules.additive_score_cpu as score_cpu

    counted: list[int] = []
    original = score_cpu.compiled_score

    def compiled() -> Callable:
        function = original()

        def score(*args: torch.Tensor) -> torch.Tensor:
            result = function(*args)
            counted.append(1)
            return result

        return score

    monkeypatch.setattr(score_cpu, "compiled_score", compiled)
    return counted
