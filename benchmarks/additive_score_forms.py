"""The additive attention score on this CPU in its two inference forms, side by side in one process.

    python benchmarks/additive_score_forms.py                       # batch 64, beam 5 (about a minute here)
    taskset -c 0,1 python benchmarks/additive_score_forms.py --threads 2

Forms (``modules.additive_score_cpu``): "tanh" = v^T tanh(U k + b + W q); "exp" = 2 v^T / (1 + exp(-2 (U k + b))
exp(-2 W q)) - sum(v), with the key factor computed once per sequence. Inference uses "exp" on CPUs whose capability
is in ``EXP_FORM_CPU`` (AVX2 and below, where PyTorch's tanh is slow); this benchmark switches that tuple to time
both on whatever CPU runs it, so the choice can be checked on a new CPU.

Measured, the form taking turns call by call (so drifts in the machine's speed affect both alike): the score of
batch x beam queries over the keys (medians of --repeats groups of 10 calls), and on ``benchmarks/beam_search.py``'s
decoder and memories, batched beam search (medians of --repeats calls) and the per-sample loop (medians of
max(1, --repeats // 3) calls). Prints a markdown table and writes it to benchmarks/results/additive_score_forms.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402
from benchmarks.beam_search import BOS, EOS, build_decoder, make_memory, timed  # noqa: E402
from modules import additive_score_cpu  # noqa: E402
from modules.beam_search import beam_search  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "additive_score_forms.md")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    per_sample_repeats = max(1, args.repeats // 3)
    capability, default = torch.backends.cpu.get_cpu_capability(), additive_score_cpu.EXP_FORM_CPU
    forms = {"tanh": (), "exp": (capability,)}          # the EXP_FORM_CPU tuple that selects each form here

    def in_each_form(call: Callable[[], object], repeats: int) -> dict[str, float]:
        """Median seconds of ``call`` in each form, the forms taking turns (benchmarks/beam_search.py's timed)."""
        def in_form(form: str) -> Callable[[], object]:
            def switched() -> object:
                additive_score_cpu.EXP_FORM_CPU = forms[form]
                return call()
            return switched
        medians, _ = timed([in_form(form) for form in forms], repeats)
        return dict(zip(forms, medians, strict=True))

    decoder = build_decoder().eval()
    memory = make_memory(args.batch)                                                     # [B, N, D]
    singles = [memory[i:i + 1] for i in range(args.batch)]
    with torch.no_grad():
        queries = decoder.init_state(memory, None).h                                    # [B, H]
        queries = queries.repeat_interleave(args.beam, 0).view(args.batch, args.beam, -1)   # [B, K, H]

    def score() -> None:
        with torch.no_grad():
            precomputed = decoder.attention.precompute(memory)
            for _ in range(10):
                decoder.attention.score(queries, precomputed)

    def batched() -> None:
        beam_search(decoder, memory, None, BOS, EOS, beam_size=args.beam)

    def per_sample() -> None:
        for single in singles:
            beam_search(decoder, single, None, BOS, EOS, beam_size=args.beam)

    try:
        scores = in_each_form(score, args.repeats)
        batched_s = in_each_form(batched, args.repeats)
        per_sample_s = in_each_form(per_sample, per_sample_repeats)
    finally:
        additive_score_cpu.EXP_FORM_CPU = default
    used = "exp" if capability in default else "tanh"
    lines = [f"| form | score of {args.batch}x{args.beam} queries ms (with precompute / 10) | batched beam search s | "
             "per-sample s | speed-up |", "|---|---|---|---|---|"]
    for form in forms:
        lines.append(f"| {form} | {scores[form] * 100:.3f} | {batched_s[form]:.4f} | {per_sample_s[form]:.3f} | "
                     f"{per_sample_s[form] / batched_s[form]:.1f}x |")
    title = (f"Additive score forms, {training_runs.machine()}; batch {args.batch}, beam {args.beam}, "
             f"benchmarks/beam_search.py's decoder; medians of {args.repeats} (per-sample {per_sample_repeats}), "
             f"forms taking turns. This CPU's capability is {capability}: inference uses the {used} form.")
    training_runs.write_report(title, "additive_score_forms.py", lines, args.out, argv)


if __name__ == "__main__":
    main()
