"""Parallel corpora from disk: Multi30k / IWSLT style line-aligned files, or TSV.

Two layouts under ``root``:

* ``"files"`` (Multi30k, IWSLT): ``train.<src>`` + ``train.<tgt>``, ``val.<src>`` + ``val.<tgt>``, ``test.<src>`` +
  ``test.<tgt>`` (e.g. ``train.de`` + ``train.en``), UTF-8, one sentence per line, line i of one file translating
  line i of the other. The validation split is found as ``val``, ``valid`` or ``dev``; other names (e.g.
  Multi30k's ``test2016``) come through ``split_files={"test": "test2016"}``.
* ``"tsv"``: ``train.tsv``, ``val.tsv``, ``test.tsv`` (same alternative names), one ``source<TAB>target`` pair per
  line; ``tsv_columns`` picks other columns. A blank line counts as an empty pair.

Lines are split on ``"\\n"`` only (not on the other Unicode line breaks ``str.splitlines`` knows, which would shift
one file against the other), stripped, and NFC normalised. A pair with an empty side is dropped and counted
(``empty_pairs``); with ``max_tokens``, a pair with a side longer than that many whitespace tokens is dropped and
counted (``too_long``). The counts are returned and logged at INFO. Every malformed input (an empty file, a split
with no pair left after filtering included) raises :class:`ParallelTextError` naming the file (and line).
"""

from __future__ import annotations

import codecs
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "LAYOUTS",
    "SPLIT_ALIASES",
    "ParallelTextError",
    "clean_pairs",
    "load_multi30k_from_hub",
    "load_parallel_split",
]

log = logging.getLogger(__name__)

LAYOUTS = ("files", "tsv")
# File stems tried for each split, in order, when split_files does not name one.
SPLIT_ALIASES: dict[str, tuple[str, ...]] = {"train": ("train",), "val": ("val", "valid", "dev"), "test": ("test",)}
HUB_DATASET = "bentrevett/multi30k"
_HUB_SPLITS = {"train": "train", "val": "validation", "test": "test"}
_LISTED = 50  # files named in a "missing file" message


class ParallelTextError(ValueError):
    """A parallel corpus on disk is not as expected; the message names the file (and line) and what was expected."""


def _present_files(root: Path) -> str:
    """The files in ``root`` for an error message (sorted, at most :data:`_LISTED`)."""
    if not root.is_dir():
        return f"(root {root} is not a directory)"
    names = sorted(p.name for p in root.iterdir())
    if not names:
        return "(root is empty)"
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return ", ".join(names[:_LISTED]) + more


def _find_file(root: Path, split: str, suffix: str, split_files: Mapping[str, str] | None) -> Path:
    """``root/<stem>.<suffix>`` for the first stem of ``split`` that exists (``split_files`` first, then aliases)."""
    if split_files and split in split_files:
        stems: Sequence[str] = (split_files[split],)
    else:
        stems = SPLIT_ALIASES.get(split, (split,))
    candidates = [root / f"{stem}.{suffix}" for stem in stems]
    for path in candidates:
        if path.is_file():
            return path
    tried = " or ".join(str(p) for p in candidates)
    raise ParallelTextError(
        f"missing file {tried} (split {split!r}); files present in {root}: {_present_files(root)}. "
        "Name the split's file(s) as tried (train.py reads these names), or pass split_files={split: stem} to "
        "load_parallel_split if the split has another name."
    )


def _read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 file (a BOM is dropped), split on ``\\n`` only, without their line ends; a
    :class:`ParallelTextError` for an empty file."""
    data = path.read_bytes()
    data = data[len(codecs.BOM_UTF8) :] if data.startswith(codecs.BOM_UTF8) else data
    if not data:
        raise ParallelTextError(f"{path} is empty (0 lines); expected one sentence a line")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ParallelTextError(f"{path}: line {line} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":  # the newline ending the last line (or an empty file)
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _split_tsv(path: Path, lines: Sequence[str], columns: tuple[int, int]) -> tuple[list[str], list[str]]:
    """The two chosen columns of every TSV line; a blank line gives an empty pair."""
    needed = max(columns) + 1
    sources, targets = [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            sources.append("")
            targets.append("")
            continue
        fields = line.split("\t")
        if len(fields) < needed:
            raise ParallelTextError(
                f"{path}: line {number} has {len(fields)} tab-separated column(s), expected at least {needed} "
                f"(tsv_columns={tuple(columns)})"
            )
        sources.append(fields[columns[0]])
        targets.append(fields[columns[1]])
    return sources, targets


def _clean(text: str, lowercase: bool) -> str:
    """Stripped, NFC normalised and optionally lowercased."""
    text = unicodedata.normalize("NFC", text.strip())
    return text.lower() if lowercase else text


def clean_pairs(
    sources: Sequence[str],
    targets: Sequence[str],
    lowercase: bool = False,
    max_tokens: int | None = None,
) -> tuple[list[str], list[str], dict[str, int]]:
    """Strip, NFC normalise and optionally lowercase aligned sentences; drop and count empty and too-long pairs.

    Returns:
        The kept sources, the kept targets, and the counts ``empty_pairs`` (a side empty after stripping) and
        ``too_long`` (a side with more than ``max_tokens`` whitespace tokens; 0 when ``max_tokens`` is None).
    """
    if len(sources) != len(targets):
        raise ValueError(f"sources and targets differ in length: {len(sources)} vs {len(targets)}")
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens}")
    stats = {"empty_pairs": 0, "too_long": 0}
    kept_sources, kept_targets = [], []
    for raw_source, raw_target in zip(sources, targets, strict=True):
        source, target = _clean(raw_source, lowercase), _clean(raw_target, lowercase)
        if not source or not target:
            stats["empty_pairs"] += 1
            continue
        if max_tokens is not None and max(len(source.split()), len(target.split())) > max_tokens:
            stats["too_long"] += 1
            continue
        kept_sources.append(source)
        kept_targets.append(target)
    return kept_sources, kept_targets, stats


def load_parallel_split(
    root: str | Path,
    split: str,
    source_lang: str,
    target_lang: str,
    layout: str = "files",
    lowercase: bool = False,
    max_tokens: int | None = None,
    split_files: Mapping[str, str] | None = None,
    tsv_columns: tuple[int, int] = (0, 1),
) -> tuple[list[str], list[str], dict[str, int]]:
    """Read one split of a parallel corpus.

    Args:
        root: the folder holding the files.
        split: ``train``, ``val`` or ``test`` (``val`` also found as ``valid`` / ``dev``); any other name is used
            as the file stem itself.
        source_lang: the source file suffix in the ``files`` layout (e.g. ``"de"``); names the side in messages.
        target_lang: the target file suffix (e.g. ``"en"``).
        layout: ``"files"`` (``<split>.<lang>`` pairs) or ``"tsv"`` (``<split>.tsv``).
        lowercase: lowercase both sides.
        max_tokens: drop pairs with a side longer than this many whitespace tokens (None keeps all); apply it to
            the splits you want filtered (usually train only).
        split_files: file stem per split when it differs, e.g. ``{"val": "valid", "test": "test2016"}``.
        tsv_columns: the (source, target) column indices in the ``tsv`` layout.

    Returns:
        Source sentences, target sentences (aligned), and the counts ``empty_pairs`` and ``too_long``.

    Raises:
        ParallelTextError: unknown layout, missing file (the message lists the files present), an empty file,
            source and target files of different line counts, a TSV line with too few columns, a line that is not
            UTF-8, or no pair left after filtering (the message gives the drop counts).
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise ParallelTextError(f"unknown layout {layout!r}; choose from {LAYOUTS}")
    if layout == "files":
        if source_lang == target_lang:
            raise ParallelTextError(f"source_lang and target_lang are both {source_lang!r}; the files layout needs two")
        source_path = _find_file(root, split, source_lang, split_files)
        target_path = _find_file(root, split, target_lang, split_files)
        sources, targets = _read_lines(source_path), _read_lines(target_path)
        if len(sources) != len(targets):
            raise ParallelTextError(
                f"line counts differ: {source_path} has {len(sources)} lines but {target_path} has {len(targets)} "
                "lines; the files must be line-aligned (line i of one translates line i of the other)"
            )
        where = f"{source_path} + {target_path}"
    else:
        if len(tsv_columns) != 2 or min(tsv_columns) < 0 or tsv_columns[0] == tsv_columns[1]:
            raise ParallelTextError(f"tsv_columns must be two different non-negative indices, got {tsv_columns}")
        path = _find_file(root, split, "tsv", split_files)
        sources, targets = _split_tsv(path, _read_lines(path), tuple(tsv_columns))
        where = str(path)
    kept_sources, kept_targets, stats = clean_pairs(sources, targets, lowercase, max_tokens)
    if not kept_sources:
        raise ParallelTextError(_empty_split_message(where, split, len(sources), stats, max_tokens))
    dropped = {k: v for k, v in stats.items() if v}
    if dropped:
        log.info("%s: %d pairs kept; dropped: %s", where, len(kept_sources), dropped)
    return kept_sources, kept_targets, stats


def _empty_split_message(where: str, split: str, read: int, stats: Mapping[str, int], max_tokens: int | None) -> str:
    """Why a split has no sentence pair left: how many were read and what dropped them."""
    limit = f" (max_tokens={max_tokens}: data.max_tokens)" if stats.get("too_long") else ""
    return (
        f"{where}: split {split!r} is empty after filtering: {read} pair(s) read, dropped empty_pairs "
        f"{stats.get('empty_pairs', 0)} (a side blank), too_long {stats.get('too_long', 0)}{limit}"
    )


def load_multi30k_from_hub(
    split: str,
    source_lang: str = "de",
    target_lang: str = "en",
    lowercase: bool = False,
    max_tokens: int | None = None,
) -> tuple[list[str], list[str], dict[str, int]]:
    """Multi30k (``bentrevett/multi30k``, fields ``de`` and ``en``) from the Hugging Face Hub; needs ``datasets``
    and a network. Returns what :func:`load_parallel_split` returns.

    Raises:
        RuntimeError: ``datasets`` is not installed, or the download fails (offline); the message says to download
            the files and use ``load_parallel_split(root, split, "de", "en", layout="files")``.
    """
    if split not in _HUB_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {tuple(_HUB_SPLITS)}")
    for role, lang in (("source", source_lang), ("target", target_lang)):
        if lang not in ("de", "en"):
            raise ValueError(f"unknown {role} language {lang!r}; {HUB_DATASET} has 'de' and 'en'")
    instead = (
        "Download Multi30k (train/val/test .de and .en files, e.g. from https://github.com/multi30k/dataset) and "
        f"read them with load_parallel_split(root, {split!r}, {source_lang!r}, {target_lang!r}, layout='files')."
    )
    try:
        import datasets
    except ImportError:
        raise RuntimeError(f"the Hugging Face 'datasets' package is not installed. {instead}") from None
    try:
        rows = datasets.load_dataset(HUB_DATASET, split=_HUB_SPLITS[split])
        sources, targets = list(rows[source_lang]), list(rows[target_lang])
    except Exception as e:  # datasets raises many kinds (ConnectionError, OSError, its own) when offline
        raise RuntimeError(f"cannot load {HUB_DATASET} from the Hub ({type(e).__name__}: {e}). {instead}") from e
    kept_sources, kept_targets, stats = clean_pairs(sources, targets, lowercase, max_tokens)
    if not kept_sources:
        raise ParallelTextError(_empty_split_message(f"{HUB_DATASET} {split}", split, len(sources), stats, max_tokens))
    if any(stats.values()):
        log.info("%s %s: %d pairs kept; dropped: %s", HUB_DATASET, split, len(kept_sources), stats)
    return kept_sources, kept_targets, stats
