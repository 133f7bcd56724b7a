"""Reader for the idx format of MNIST / Fashion-MNIST (plain or gzip-compressed).

An idx file is a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the payload in C order. MNIST images are ``0x00000803`` (ubyte, 3 dims:
N, 28, 28) and labels ``0x00000801`` (ubyte, 1 dim: N). Every problem is reported as an
:class:`IdxFormatError` that names the file and what is wrong, never as a raw numpy/struct error.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Sequence

import numpy as np

__all__ = ["IdxFormatError", "read_idx"]

# idx dtype codes -> big-endian numpy dtypes (MNIST only uses 0x08).
_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class IdxFormatError(ValueError):
    """An idx file is malformed; the message names the file and the problem."""


def _read_bytes(path: str) -> bytes:
    """Return the decompressed content of ``path`` (gzip detected by its magic bytes)."""
    with open(path, "rb") as f:  # FileNotFoundError propagates as is: it already names the path
        raw = f.read()
    # A plain idx file starts with two zero bytes, so the gzip magic cannot be mistaken for one.
    if raw[:2] != _GZIP_MAGIC:
        if path.endswith(".gz"):
            raise IdxFormatError(
                f"{path}: not a gzip file (name ends in .gz but the gzip magic bytes are missing)"
            )
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
        raise IdxFormatError(f"{path}: corrupt gzip data ({e})") from None


def read_idx(path: str | os.PathLike, expected_shape: Sequence[int | None] | None = None) -> np.ndarray:
    """Read an idx file into a native-endian numpy array.

    Args:
        path: the file, plain or ``.gz`` (gzip content is detected by its magic bytes).
        expected_shape: if given, the array must have this many dims, and every non-``None``
            entry must match, e.g. ``(None, 28, 28)`` for MNIST images or ``(None,)`` for labels.

    Returns:
        The payload, shaped as the header says (``uint8`` for MNIST).

    Raises:
        IdxFormatError: bad magic number, unknown dtype code, wrong dims, truncated or oversized
            payload, corrupt gzip. The message names ``path``.
        FileNotFoundError: the file does not exist.
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(
            f"{path}: file truncated: {len(data)} bytes, too short for the 4-byte idx magic number"
        )
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or code not in _DTYPES or ndim == 0:
        raise IdxFormatError(
            f"{path}: bad magic number 0x{magic:08X}, expected 0x0000TTNN (two zero bytes, dtype code TT in "
            f"{', '.join(f'0x{c:02X}' for c in _DTYPES)}, NN >= 1 dims; MNIST: 0x00000803 images, "
            "0x00000801 labels)"
        )
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(
            f"{path}: file truncated: header declares {ndim} dims but the file ends inside them"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    if expected_shape is not None:
        want = tuple(expected_shape)
        if len(dims) != len(want) or any(w is not None and w != d for w, d in zip(want, dims, strict=True)):
            shown = ", ".join("N" if w is None else str(w) for w in want)
            raise IdxFormatError(f"{path}: wrong dims {dims}, expected ({shown})")
    dtype = _DTYPES[code]
    expected_bytes = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_len
    if found < expected_bytes:
        raise IdxFormatError(
            f"{path}: file truncated: header says {expected_bytes} bytes of payload for dims {dims}, "
            f"found {found}"
        )
    if found > expected_bytes:
        raise IdxFormatError(
            f"{path}: {found - expected_bytes} unexpected trailing bytes: header says {expected_bytes} "
            f"bytes of payload for dims {dims}, found {found}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)  # writable, native byte order
