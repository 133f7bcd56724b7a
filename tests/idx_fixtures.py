"""Writers of MNIST idx files for tests: single arrays, and a tiny torchvision-layout raw folder."""

import gzip

import numpy as np

from datamodules.digits import IDX_FILES


def idx_bytes(arr: np.ndarray, magic: int | None = None) -> bytes:
    """Serialise a uint8 array as idx (header + payload); ``magic`` overrides the magic number."""
    magic = (0x0800 | arr.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def write_raw(raw_dir, n_train=30, n_test=20, gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
    """Tiny torchvision-layout fixture: random-stroke digits, 3 train / 2 test per class, some files .gz."""
    rng = np.random.default_rng(0)
    raw_dir.mkdir(parents=True, exist_ok=True)
    data = {}
    for split, n in (("train", n_train), ("test", n_test)):
        digits = np.zeros((n, 28, 28), np.uint8)
        digits[:, 6:22, 6:22] = rng.integers(0, 256, (n, 16, 16))  # ink inside a 4-px margin
        labels = np.arange(n) % 10
        data[split] = (digits, labels)
        for name, arr in zip(IDX_FILES[split], (digits, labels), strict=True):
            content = idx_bytes(arr)
            if name in gz:
                (raw_dir / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (raw_dir / name).write_bytes(content)
    return data
