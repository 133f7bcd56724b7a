"""trainer.precision=auto: bf16-mixed only where the device computes bf16 natively; an explicit bf16-mixed on a CPU
without it is kept and warned about; the resolved value is what the run (and its checkpoint config) uses."""

from __future__ import annotations

import logging

import pytest
import torch

from suite import precision
from suite.run import resolve_trainer_precision

AMD_ZEN3 = {"fpu", "sse4_2", "avx", "avx2", "fma", "sha_ni"}
SAPPHIRE_RAPIDS = AMD_ZEN3 | {"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}


def test_cpu_flags_are_read_from_cpuinfo_for_x86_and_arm(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert precision.cpu_flags(x86) == {"fpu", "avx2", "fma"}
    assert precision.cpu_flags(arm) == {"fp", "asimd", "bf16", "i8mm"}
    assert precision.cpu_flags(tmp_path / "missing") == set()


def test_native_bf16_needs_avx512_bf16_amx_or_arm_bf16():
    assert not precision.cpu_has_native_bf16(AMD_ZEN3)
    assert not precision.cpu_has_native_bf16(AMD_ZEN3 | {"avx512f", "avx512bw"})   # AVX-512 alone emulates bf16
    assert precision.cpu_has_native_bf16(SAPPHIRE_RAPIDS)
    assert precision.cpu_has_native_bf16({"fp", "asimd", "bf16"})


@pytest.mark.parametrize("flags, expected", [(AMD_ZEN3, "32-true"), (SAPPHIRE_RAPIDS, "bf16-mixed")])
def test_auto_on_the_cpu_follows_the_cpu(monkeypatch, flags, expected):
    monkeypatch.setattr(precision, "cpu_flags", lambda: flags)
    resolved, message, warning = precision.resolve_precision("auto", "cpu")
    assert resolved == expected and message.startswith(f"trainer.precision=auto -> {expected}") and not warning


def test_auto_on_a_gpu_asks_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for capability, expected in (((9, 0), "bf16-mixed"), ((8, 0), "bf16-mixed"), ((7, 0), "32-true")):  # H100 A100 V100
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert precision.resolve_precision("auto", "gpu")[0] == expected
        assert precision.resolve_precision("auto", "auto")[0] == expected      # accelerator=auto finds the GPU


def test_explicit_choices_are_kept_and_bf16_on_a_slow_cpu_is_warned_about(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: AMD_ZEN3)
    resolved, message, warning = precision.resolve_precision("bf16-mixed", "cpu")
    assert resolved == "bf16-mixed" and "without native bf16" in message and "auto" in message and warning
    assert precision.resolve_precision("32-true", "cpu") == ("32-true", "", False)
    monkeypatch.setattr(precision, "cpu_flags", lambda: SAPPHIRE_RAPIDS)
    assert precision.resolve_precision("bf16-mixed", "cpu") == ("bf16-mixed", "", False)


def test_the_run_config_holds_the_resolved_precision_and_the_log_says_why(make_cfg, monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_flags", lambda: AMD_ZEN3)
    cfg = make_cfg("task=stn", "trainer=cpu")
    assert cfg.trainer.precision == "auto"                      # the STN task's default
    with caplog.at_level(logging.INFO, logger="suite.run"):
        resolve_trainer_precision(cfg)
    assert cfg.trainer.precision == "32-true" and "auto -> 32-true" in caplog.text
    cfg = make_cfg("task=stn", "trainer=cpu", "trainer.precision=bf16-mixed")
    with caplog.at_level(logging.WARNING, logger="suite.run"):
        resolve_trainer_precision(cfg)
    assert cfg.trainer.precision == "bf16-mixed" and "10-100x slower" in caplog.text
