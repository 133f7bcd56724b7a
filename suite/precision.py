"""``trainer.precision=auto``: bf16-mixed where the hardware computes in bf16 natively, else 32-true.

bf16 autocast is a large win only with native bf16 arithmetic: CUDA GPUs from Ampere on, and CPUs with
AVX512-BF16 or AMX or the Arm BF16 extension. Elsewhere PyTorch emulates it, many times slower than float32
(benchmarks/results/precision_avx2.md). So the task configs that prefer bf16 ask for ``auto``, and an explicit
``bf16-mixed`` on such a CPU is kept but warned about.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path
from typing import NamedTuple

import torch

log = logging.getLogger(__name__)

AUTO = "auto"
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}   # x86 AVX512-BF16 / AMX-BF16; Arm FEAT_BF16 ("bf16")


@cache
def cpuinfo_fields(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The ``key: value`` lines of the first CPU listed in /proc/cpuinfo (read once); empty where there is none."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break                                                      # the end of the first CPU's block
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The feature flags of the first CPU listed in /proc/cpuinfo (x86 "flags", Arm "Features"); empty elsewhere."""
    fields = cpuinfo_fields(cpuinfo)
    return set((fields.get("flags") or fields.get("Features") or "").split())


def cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo ("AMD EPYC"), or "" where there is none."""
    return cpuinfo_fields().get("model name", "")


def cpu_has_native_bf16(flags: set[str] | None = None) -> bool:
    """True when this CPU computes bf16 in hardware (flags from /proc/cpuinfo; oneDNN's check where there are none)."""
    flags = cpu_flags() if flags is None else flags
    if flags:
        return bool(BF16_CPU_FLAGS & flags)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def run_device(accelerator: str) -> str:
    """The device type a Trainer with this ``accelerator`` runs on: "cuda", "cpu" or another (mps, tpu, ...)."""
    accelerator = str(accelerator).lower()
    if accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if accelerator == "gpu" else accelerator


def has_native_bf16(device: str) -> bool:
    if device == "cuda":   # bf16 tensor cores from compute capability 8 (Ampere) on; works on every torch >= 2.3
        return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    return device == "cpu" and cpu_has_native_bf16()


class Resolution(NamedTuple):
    precision: str | int   # what to give Lightning
    message: str           # a sentence for the log, or "" when there is nothing to say
    warning: bool = False  # the message warns (an explicit choice that will be slow) rather than informs


def resolve_precision(precision: str | int, accelerator: str) -> Resolution:
    device = run_device(accelerator)
    if str(precision) == AUTO:
        if has_native_bf16(device):
            return Resolution("bf16-mixed", f"trainer.precision=auto -> bf16-mixed ({device} computes bf16 natively)")
        return Resolution("32-true", f"trainer.precision=auto -> 32-true ({device} has no native bf16"
                                     f"{': ' + torch.backends.cpu.get_cpu_capability() if device == 'cpu' else ''})")
    if str(precision).startswith("bf16") and device == "cpu" and not cpu_has_native_bf16():
        return Resolution(precision, f"trainer.precision={precision} on a CPU without native bf16 "
                                     f"({torch.backends.cpu.get_cpu_capability()}, no AVX512-BF16 / AMX): PyTorch "
                                     "emulates it, which can be 10-100x slower than 32-true; trainer.precision=auto "
                                     "picks the fast one", warning=True)
    return Resolution(precision, "")


def log_resolution(resolution: Resolution, logger: logging.Logger) -> None:
    """The resolution's message, if any, at its level."""
    if resolution.message:
        (logger.warning if resolution.warning else logger.info)(resolution.message)
