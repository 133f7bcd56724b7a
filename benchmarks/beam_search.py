"""Batched beam search vs the same search run one sample at a time: speed, and a check that the outputs agree.

    python benchmarks/beam_search.py                          # batch 64, beam 5, max_len 20 (seconds here)
    python benchmarks/beam_search.py --sizes 1 8 64 256 --threads 1
    python benchmarks/beam_search.py --fused-score            # attention scores compiled (train.py's compile=true)

Both paths run ``modules.beam_search.beam_search`` on the same decoder and the same memories: once on the
whole batch, and once in a Python loop that calls it with batch 1 per sample. Per-sample results are compared:
tokens identical, ``finished`` identical, scores within 1e-4, attention maps within 1e-4 (the largest
differences are reported). ``greedy_decode`` is also compared with ``beam_search`` at width 1, both batched.
Each timing is the median of ``--repeats`` calls (``time.perf_counter``) after one warm-up call, the two paths
taking turns (so load from other processes affects them alike).

The model is an ``AttentionLSTMDecoder`` with the captioning task's sizes, read from
configs/task/captioning.yaml (embedding 64, hidden 256, additive attention of width 128, memory 128: the conv
encoder's last stage), a vocabulary of 40 words, over a memory of 64 positions (an 8x8 image grid), with random
weights (``torch.manual_seed(--seed)``), in eval mode. A random decoder would emit EOS at random, so two
weights are set by hand to make captions end after about 8-14 words, as a trained one does
(``build_decoder``): one LSTM unit is a step counter and drives the EOS logit up over time. The classifier is
scaled up so the word distributions are peaked like a trained model's (the most likely word has about 0.4 of
the probability) rather than near uniform. The memories are random: a per-image vector plus per-position noise.

Prints a markdown table and writes it to benchmarks/results/beam_search.md; exits with status 1 if any output
differs, so it doubles as a check.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import training_runs  # noqa: E402
from modules.additive_score_cpu import fuse_additive_scores  # noqa: E402
from modules.beam_search import Hypothesis, beam_search, greedy_decode  # noqa: E402
from modules.decoders import AttentionLSTMDecoder  # noqa: E402

_CAPTIONING = OmegaConf.load(ROOT / "configs" / "task" / "captioning.yaml").model   # the task's decoder sizes
EMBED, HIDDEN, ATTENTION_DIM = _CAPTIONING.embed_dim, _CAPTIONING.hidden_dim, _CAPTIONING.attention_dim
MEMORY_DIM = OmegaConf.load(ROOT / "configs" / "model" / "encoder" / "conv.yaml").channels[-1]   # its last stage
VOCAB, POSITIONS = 40, 64                       # the generated scenes' vocabulary; the 8x8 grid of 64x64 images
BOS, EOS = 1, 2
SCORE_TOLERANCE = ATTENTION_TOLERANCE = 1e-4
# The EOS trick (see build_decoder): counter c_t = COUNTER_START + COUNTER_STEP * t, EOS logit += EOS_WEIGHT *
# tanh(tanh(c_t)); other words' logits scaled by CLASSIFIER_SCALE.
COUNTER_START, COUNTER_STEP, EOS_WEIGHT, CLASSIFIER_SCALE = -0.9, 0.1, 30.0, 15.0
SATURATED = 10.0   # a gate pre-activation whose sigmoid is 1 - 5e-5
BEAM_COLUMNS = ["batch", "beam", "batched s", "per-sample s", "speed-up", "captions/s batched", "identical outputs",
                "max abs diff score", "max abs diff attention", "caption words min / mean / max",
                "ended by max_len"]
GREEDY_COLUMNS = ["batch", "greedy_decode s", "beam_search width 1 s", "identical outputs", "max abs diff score",
                  "max abs diff attention"]


@dataclass
class Comparison:
    """How two lists of hypotheses of the same samples differ."""

    samples: int
    mismatches: int            # samples whose tokens or finished differ, or score / attention out of tolerance
    max_score_diff: float      # over samples with the same tokens
    max_attention_diff: float  # over samples with the same tokens

    @property
    def identical(self) -> bool:
        return self.mismatches == 0

    def cell(self) -> str:
        """'yes (0 of 64 differ)' or 'no (3 of 64 differ)'."""
        return f"{'yes' if self.identical else 'no'} ({self.mismatches} of {self.samples} differ)"


@dataclass
class BeamRow:
    """One batch size: batched vs per-sample beam search."""

    batch: int
    beam: int
    batched_s: float
    per_sample_s: float
    comparison: Comparison
    lengths: list[int]         # words of each batched caption
    unfinished: int            # captions that reached max_len without EOS


@dataclass
class GreedyRow:
    """One batch size: greedy_decode vs beam_search width 1, both batched."""

    batch: int
    greedy_s: float
    beam1_s: float
    comparison: Comparison


@dataclass
class Report:
    """All rows, and the markdown tables."""

    beam_rows: list[BeamRow]
    greedy_rows: list[GreedyRow]
    table: str

    @property
    def identical(self) -> bool:
        return all(r.comparison.identical for r in [*self.beam_rows, *self.greedy_rows])


def build_decoder(seed: int = 0) -> AttentionLSTMDecoder:
    """A captioning-sized decoder with random weights that ends its captions after about 8-14 words (eval mode).

    The EOS trick, all in the decoder's own weights (so the benchmark times the unmodified decoder):
    the last LSTM unit u has no input or recurrent weights and saturated input, forget and output gates, and a
    candidate tanh(b) = COUNTER_STEP, so its cell counts steps: c_t = COUNTER_START + COUNTER_STEP * t
    (c_0 from init_c's bias, which gets no weights from the memory), and h_t[u] = tanh(c_t). The last unit e of
    the output vector reads only that unit (o_t[e] = tanh(h_t[u]): out_h, out_z and the embedding contribute
    nothing else to it), and the classifier reads o_t[e] for EOS only, with weight EOS_WEIGHT. The EOS logit
    thus rises from about -21 at the first step through 0 at step 9 to about +20; the words' logits
    (classifier weights and bias scaled by CLASSIFIER_SCALE) stay as random as the rest of the model, so where
    EOS overtakes them differs from caption to caption.
    """
    torch.manual_seed(seed)
    decoder = AttentionLSTMDecoder(VOCAB, EMBED, HIDDEN, MEMORY_DIM, attention="additive",
                                   attention_dim=ATTENTION_DIM, dropout=0.0)
    u, e = HIDDEN - 1, EMBED - 1
    with torch.no_grad():
        decoder.classifier.weight.mul_(CLASSIFIER_SCALE)
        decoder.classifier.bias.mul_(CLASSIFIER_SCALE)
        gates = [g * HIDDEN + u for g in range(4)]                   # rows of unit u in LSTMCell's i, f, g, o
        decoder.lstm.weight_ih[gates] = 0.0
        decoder.lstm.weight_hh[gates] = 0.0
        decoder.lstm.bias_hh[gates] = 0.0
        decoder.lstm.bias_ih[gates] = torch.tensor([SATURATED, SATURATED, math.atanh(COUNTER_STEP), SATURATED])
        decoder.init_c.weight[u] = 0.0
        decoder.init_c.bias[u] = math.atanh(COUNTER_START)
        decoder.out_h.weight[e] = 0.0
        decoder.out_h.weight[e, u] = 1.0
        decoder.out_h.bias[e] = 0.0
        decoder.out_z.weight[e] = 0.0
        decoder.embedding.weight[:, e] = 0.0
        decoder.classifier.weight[:, e] = 0.0
        decoder.classifier.weight[EOS, e] = EOS_WEIGHT
    return decoder.eval()


def make_memory(batch: int, seed: int = 0) -> Tensor:
    """Random image-grid memories [batch, 64, 128]: a per-image vector plus per-position noise."""
    generator = torch.Generator().manual_seed(seed)
    per_image = torch.randn(batch, 1, MEMORY_DIM, generator=generator)                 # [B, 1, D]
    return per_image + torch.randn(batch, POSITIONS, MEMORY_DIM, generator=generator)   # [B, N, D]


def compare(a: list[Hypothesis], b: list[Hypothesis]) -> Comparison:
    """Sample by sample: tokens and finished identical, score and attention within 1e-4."""
    if len(a) != len(b):
        raise ValueError(f"compare: {len(a)} hypotheses vs {len(b)}; expected one per sample on both sides")
    mismatches, max_score, max_attention = 0, 0.0, 0.0
    for x, y in zip(a, b, strict=True):
        if x.tokens != y.tokens or x.finished != y.finished:
            mismatches += 1
            continue
        score = abs(x.score - y.score)
        attention = (x.attention - y.attention).abs().max().item() if x.attention.numel() else 0.0
        max_score, max_attention = max(max_score, score), max(max_attention, attention)
        mismatches += score > SCORE_TOLERANCE or attention > ATTENTION_TOLERANCE
    return Comparison(len(a), mismatches, max_score, max_attention)


def timed(calls: list[Callable[[], list[Hypothesis]]], repeats: int) -> tuple[list[float], list[list[Hypothesis]]]:
    """Median seconds of each call over ``repeats`` turns after one warm-up each, and each call's last output."""
    outputs = [call() for call in calls]   # warm-up
    seconds: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            outputs[i] = call()
            seconds[i].append(time.perf_counter() - start)
    return [statistics.median(s) for s in seconds], outputs


def measure(decoder: AttentionLSTMDecoder, batch: int, beam: int, max_len: int, repeats: int,
            length_penalty: float = 1.0, seed: int = 0, memory: Tensor | None = None, bos: int = BOS,
            eos: int = EOS, memory_mask: Tensor | None = None) -> tuple[BeamRow, GreedyRow]:
    """Time and compare, on ``batch`` memories: batched vs per-sample beam search; greedy vs width 1.

    ``memory`` [batch, N, D]: what to decode from (e.g. a trained captioner's encoded images); default: random
    memories for the hand-set decoder of ``build_decoder``.
    """
    memory = make_memory(batch, seed) if memory is None else memory                      # [B, N, D]
    mask = memory_mask                                                                    # [B, N] | None
    BOS, EOS = bos, eos  # noqa: N806 (the token ids the calls below use)
    options = dict(max_len=max_len, length_penalty=length_penalty)

    # every path returns B Hypothesis objects (list(...) builds them inside the timed call, as the loop does)
    def batched() -> list[Hypothesis]:
        return list(beam_search(decoder, memory, mask, BOS, EOS, beam_size=beam, **options))

    def per_sample() -> list[Hypothesis]:
        return [beam_search(decoder, memory[i:i + 1], None if mask is None else mask[i:i + 1], BOS, EOS,
                            beam_size=beam, **options)[0] for i in range(batch)]

    def greedy() -> list[Hypothesis]:
        return list(greedy_decode(decoder, memory, mask, BOS, EOS, **options))

    def width_one() -> list[Hypothesis]:
        return list(beam_search(decoder, memory, mask, BOS, EOS, beam_size=1, **options))

    (batched_s, per_sample_s), (together, alone) = timed([batched, per_sample], repeats)
    (greedy_s, beam1_s), (greedy_out, beam1_out) = timed([greedy, width_one], repeats)
    beam_row = BeamRow(batch, beam, batched_s, per_sample_s, compare(together, alone),
                       [len(h.tokens) for h in together], sum(not h.finished for h in together))
    return beam_row, GreedyRow(batch, greedy_s, beam1_s, compare(greedy_out, beam1_out))


def format_table(beam_rows: list[BeamRow], greedy_rows: list[GreedyRow]) -> str:
    """The two markdown tables (beam search batched vs per-sample; greedy vs width 1)."""

    def header(columns: list[str]) -> list[str]:
        return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]

    lines = header(BEAM_COLUMNS)
    for r in beam_rows:
        c = r.comparison
        words = f"{min(r.lengths)} / {statistics.mean(r.lengths):.1f} / {max(r.lengths)}"
        lines.append(f"| {r.batch} | {r.beam} | {r.batched_s:.3f} | {r.per_sample_s:.3f} | "
                     f"{r.per_sample_s / r.batched_s:.1f}x | {r.batch / r.batched_s:,.0f} | {c.cell()} | "
                     f"{c.max_score_diff:.1e} | {c.max_attention_diff:.1e} | {words} | {r.unfinished} |")
    lines += ["", *header(GREEDY_COLUMNS)]
    for r in greedy_rows:
        c = r.comparison
        lines.append(f"| {r.batch} | {r.greedy_s:.3f} | {r.beam1_s:.3f} | {c.cell()} | {c.max_score_diff:.1e} | "
                     f"{c.max_attention_diff:.1e} |")
    return "\n".join(lines)


def run(sizes: list[int], beam: int = 5, max_len: int = 20, repeats: int = 3, length_penalty: float = 1.0,
        seed: int = 0, verbose: bool = False, device: str = "cpu", fused_score: bool = False) -> Report:
    """Measure every batch size in ``sizes`` on one decoder -> Report (rows and markdown tables).

    fused_score: the attention scores with the compiled fused kernel (train.py's compile=true) on both paths; the
    warm-up calls compile it for their shapes."""
    decoder = build_decoder(seed).to(device)
    if fused_score:
        fuse_additive_scores(decoder)
    beam_rows, greedy_rows = [], []
    for batch in sizes:
        memory = make_memory(batch, seed).to(device)
        beam_row, greedy_row = measure(decoder, batch, beam, max_len, repeats, length_penalty, seed, memory=memory)
        beam_rows.append(beam_row)
        greedy_rows.append(greedy_row)
        if verbose:
            print(f"batch {batch}: batched {beam_row.batched_s:.3f} s, per-sample {beam_row.per_sample_s:.3f} s, "
                  f"identical {beam_row.comparison.cell()}; greedy vs width 1 {greedy_row.comparison.cell()}",
                  flush=True)
    return Report(beam_rows, greedy_rows, format_table(beam_rows, greedy_rows))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print and write the table; 0 if all outputs agree, else 1."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64, help="batch size (when --sizes is not given)")
    parser.add_argument("--sizes", type=int, nargs="+", help="batch sizes to sweep, e.g. 1 8 64 256")
    parser.add_argument("--beam", type=int, default=5)
    parser.add_argument("--max-len", type=int, default=20)
    parser.add_argument("--length-penalty", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per path (median), after one warm-up")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (each result is copied to the CPU, so the "
                        "timings include the synchronisation)")
    parser.add_argument("--fused-score", action="store_true", help="score attention with the compiled fused kernel "
                        "(train.py's compile=true) on both paths")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "beam_search.md")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or [args.batch]
    for name, value in [("--sizes/--batch", min(sizes)), ("--beam", args.beam), ("--max-len", args.max_len),
                        ("--repeats", args.repeats)]:
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")

    report = run(sizes, args.beam, args.max_len, args.repeats, args.length_penalty, args.seed, verbose=True,
                 device=args.device, fused_score=args.fused_score)
    argv_text = shlex.join(sys.argv[1:] if argv is None else argv)
    header = [
        f"Beam search benchmark, {time.strftime('%Y-%m-%d')}, {training_runs.cpu_description()}, "
        f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads"
        f"{'' if args.threads is not None else ' (default)'}, "
        f"{torch.cuda.get_device_name() if args.device.startswith('cuda') else 'CPU'}; OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}.",
        f"Model: AttentionLSTMDecoder (vocab {VOCAB}, embed {EMBED}, hidden {HIDDEN}, memory {MEMORY_DIM}, "
        f"additive attention of width {ATTENTION_DIM}; configs/task/captioning.yaml's sizes) over {POSITIONS} "
        f"positions, random weights (seed {args.seed}) with a step-counter "
        "unit raising the EOS logit (see build_decoder); max_len "
        f"{args.max_len}, length penalty {args.length_penalty}; "
        f"{'attention scored by the compiled fused kernel (compile=true); ' if args.fused_score else ''}"
        f"times are medians of {args.repeats} after a "
        "warm-up. Per-sample = a Python loop calling beam_search with batch 1; identical = same tokens and "
        f"finished, score and attention within {SCORE_TOLERANCE:g}.",
        f"Command: python benchmarks/beam_search.py {argv_text}".rstrip(), "",
    ]
    text = "\n".join([*header, report.table]) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print("\n" + text)
    if not report.identical:
        print("MISMATCH: batched and per-sample (or greedy and width-1) outputs differ; see the table",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
