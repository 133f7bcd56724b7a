"""datamodules.idx: exact round trips, and every malformed file -> IdxFormatError naming the file."""

import gzip

import numpy as np
import pytest

from datamodules.idx import IdxFormatError, read_idx
from tests.idx_fixtures import idx_bytes


def write(path, data: bytes, gz: bool = False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (5, 28, 28), dtype=np.uint8)  # [5, 28, 28]
LABELS = RNG.integers(0, 10, 5, dtype=np.uint8)  # [5]


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_images_and_labels(tmp_path, gz):
    suffix = ".gz" if gz else ""
    img = write(tmp_path / f"train-images-idx3-ubyte{suffix}", idx_bytes(IMAGES), gz)
    lbl = write(tmp_path / f"train-labels-idx1-ubyte{suffix}", idx_bytes(LABELS), gz)
    got_img = read_idx(img, expected_shape=(None, 28, 28))
    got_lbl = read_idx(str(lbl), expected_shape=(None,))
    assert got_img.dtype == np.uint8 and got_img.shape == (5, 28, 28)
    np.testing.assert_array_equal(got_img, IMAGES)
    np.testing.assert_array_equal(got_lbl, LABELS)
    assert (0x803).to_bytes(4, "big") == idx_bytes(IMAGES)[:4]  # the fixture writes the real MNIST magic
    got_img[0, 0, 0] = 1  # the result is a writable array, not a view of a bytes buffer


def test_gzip_content_detected_without_gz_suffix(tmp_path):
    path = write(tmp_path / "labels", idx_bytes(LABELS), gz=True)
    np.testing.assert_array_equal(read_idx(path), LABELS)


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic(tmp_path, gz):
    path = write(tmp_path / "bad-magic-idx3-ubyte", idx_bytes(IMAGES, magic=0x12345678), gz)
    with pytest.raises(IdxFormatError, match=r"bad magic number 0x12345678, expected") as e:
        read_idx(path)
    assert "bad-magic-idx3-ubyte" in str(e.value)


def test_unknown_dtype_code_and_zero_dims_are_bad_magic(tmp_path):
    for magic in (0x00000703, 0x00000800):
        path = write(tmp_path / f"m{magic:x}", idx_bytes(IMAGES, magic=magic))
        with pytest.raises(IdxFormatError, match=f"m{magic:x}.*bad magic number"):
            read_idx(path)


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    data = idx_bytes(IMAGES)[: 16 + 1000]  # header intact, 1000 of 3920 pixel bytes
    path = write(tmp_path / "short-images-idx3-ubyte", data, gz)
    with pytest.raises(
        IdxFormatError, match=r"short-images-idx3-ubyte.*file truncated: header says 3920 bytes"
    ):
        read_idx(path)


def test_truncated_header_and_trailing_bytes(tmp_path):
    short = write(tmp_path / "short-header", idx_bytes(IMAGES)[:9])
    with pytest.raises(IdxFormatError, match="short-header.*truncated"):
        read_idx(short)
    tiny = write(tmp_path / "tiny", b"\x00\x00")
    with pytest.raises(IdxFormatError, match="tiny.*truncated"):
        read_idx(tiny)
    long = write(tmp_path / "long-labels", idx_bytes(LABELS) + b"\x00\x01")
    with pytest.raises(IdxFormatError, match="long-labels.*2 unexpected trailing bytes"):
        read_idx(long)


def test_wrong_dims(tmp_path):
    labels = write(tmp_path / "labels-as-images", idx_bytes(LABELS))
    with pytest.raises(IdxFormatError, match=r"labels-as-images.*wrong dims \(5,\), expected \(N, 28, 28\)"):
        read_idx(labels, expected_shape=(None, 28, 28))
    small = write(tmp_path / "small-images", idx_bytes(IMAGES[:, :27]))
    with pytest.raises(IdxFormatError, match=r"small-images.*wrong dims \(5, 27, 28\)"):
        read_idx(small, expected_shape=(None, 28, 28))
    assert read_idx(small).shape == (5, 27, 28)  # without expectations any consistent idx file reads


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(idx_bytes(IMAGES))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF  # corrupt deflate data or CRC
    cases = {"flipped.gz": bytes(flipped), "cut.gz": good[: len(good) // 2], "notgzip.gz": idx_bytes(IMAGES)}
    for name, data in cases.items():
        path = write(tmp_path / name, data)
        with pytest.raises(IdxFormatError, match=name) as e:
            read_idx(path)
        assert isinstance(e.value, ValueError)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")
