"""datamodules.video_frames: frame folders of PNGs, a real encoded video, .npy features, padding and masking."""

import re
from pathlib import Path

import av  # a dependency (PyAV): a missing one fails the run instead of skipping
import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.video_annotations import VideoFormatError
from datamodules.video_frames import (
    FeatureSource,
    FrameFolderSource,
    VideoFileSource,
    VideoReadError,
    pad_clips,
    sample_frame_indices,
)

RED, BLUE = (230, 20, 20), (20, 20, 230)


def test_sample_frame_indices():
    assert sample_frame_indices(10, 5) == [1, 3, 5, 7, 9]
    assert sample_frame_indices(100, 4) == [12, 37, 62, 87]
    assert sample_frame_indices(5, 5) == [0, 1, 2, 3, 4]
    assert sample_frame_indices(3, 8) == [0, 1, 2]  # short clip: all frames
    assert sample_frame_indices(0, 4) == []
    idx = sample_frame_indices(1000, 26)
    assert len(set(idx)) == 26 and all(0 <= i < 1000 for i in idx) and idx == sorted(idx)
    with pytest.raises(ValueError, match="k"):
        sample_frame_indices(10, 0)


def test_frame_folder(tmp_path):
    folder = tmp_path / "clip_1_5"
    folder.mkdir()
    for i in range(6):  # frame i has red level 40 * i; names sort in frame order
        Image.new("RGB", (20, 12), (40 * i, 0, 255)).save(folder / f"frame_{i:04d}.png")
    (folder / "notes.txt").write_text("not a frame")
    frames, n = FrameFolderSource(tmp_path).load("clip_1_5", k=3, image_size=8)
    assert n == 3 and frames.shape == (3, 3, 8, 8) and frames.dtype == torch.float32
    # indices [1, 3, 5] -> red levels 40, 120, 200
    assert torch.allclose(frames[:, 0, 0, 0], torch.tensor([40.0, 120.0, 200.0]) / 255, atol=1e-6)
    assert torch.all(frames[:, 2] == 1.0)
    short, n_short = FrameFolderSource(tmp_path).load("clip_1_5", k=10, image_size=8)
    assert n_short == 6 and short.shape[0] == 6
    with pytest.raises(VideoReadError, match="missing_clip"):
        FrameFolderSource(tmp_path).load("missing_clip", k=3, image_size=8)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a frame")
    with pytest.raises(VideoReadError, match=rf"frame folder {re.escape(str(tmp_path / 'empty'))} has no frames"):
        FrameFolderSource(tmp_path).load("empty", k=3, image_size=8)


def test_zero_byte_frame_is_named(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    Image.new("RGB", (8, 8), RED).save(folder / "frame_0000.png")
    (folder / "frame_0001.png").write_bytes(b"")
    with pytest.raises(VideoReadError, match=r"frame .*clip/frame_0001\.png is empty \(0 bytes\)"):
        FrameFolderSource(tmp_path).load("clip", k=2, image_size=8)


def write_video(path: Path, colours: list[tuple[int, int, int]], size: int = 32) -> None:
    """Encode one solid-colour frame per entry of ``colours`` with PyAV (mpeg4 in an .mp4 container)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for colour in colours:
            image = np.zeros((size, size, 3), dtype=np.uint8)
            image[:] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_file_roundtrip(tmp_path):
    colours = [BLUE] * 10
    colours[6] = RED
    write_video(tmp_path / "video7.mp4", colours)
    source = VideoFileSource(tmp_path)
    frames, n = source.load("video7", k=10, image_size=16)
    assert n == 10 and frames.shape == (10, 3, 16, 16)
    means = frames.mean(dim=(2, 3))  # [10, 3]
    assert torch.allclose(means[6], torch.tensor(RED) / 255, atol=0.08)
    assert torch.allclose(means[0], torch.tensor(BLUE) / 255, atol=0.08)
    sampled, n4 = source.load("video7", k=4, image_size=16)  # indices [1, 3, 6, 8]
    assert n4 == 4 and sampled.shape == (4, 3, 16, 16)
    assert sampled[2, 0].mean() > 0.7 and sampled[2, 2].mean() < 0.3  # the red frame
    assert sampled[1, 2].mean() > 0.7  # a blue one


def test_video_file_corrupt_and_missing(tmp_path):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST" + bytes(range(256)) * 4)
    with pytest.raises(VideoReadError) as info:
        VideoFileSource(tmp_path).load("broken", k=4, image_size=16)
    assert str(bad) in str(info.value)
    with pytest.raises(VideoReadError, match=r"nothere\.avi.*nothere\.webm"):
        VideoFileSource(tmp_path).load("nothere", k=4, image_size=16)


def write_frameless_video(path: Path, size: int = 32) -> None:
    """A video file with a video stream and no frame: the header written, nothing encoded."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        container.start_encoding()


@pytest.mark.parametrize(("name", "reason"), [("clip.avi", "has no decodable frames"),
                                              ("clip.mkv", "has no decodable frames"),
                                              ("clip.mp4", "has no video stream")])
def test_video_without_frames_is_named(tmp_path, name, reason):
    write_frameless_video(tmp_path / name)
    source = VideoFileSource(tmp_path, extensions=(Path(name).suffix,))
    with pytest.raises(VideoReadError, match=rf"{re.escape(str(tmp_path / name))} {reason}"):
        source.load("clip", k=4, image_size=16)


def test_zero_byte_video_is_named(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"")
    path = re.escape(str(tmp_path / "clip.mp4"))
    with pytest.raises(VideoReadError, match=rf"video file {path} is empty \(0 bytes\)"):
        VideoFileSource(tmp_path).load("clip", k=4, image_size=16)


def test_feature_source(tmp_path):
    np.save(tmp_path / "video3.npy", np.arange(20 * 4, dtype=np.float64).reshape(20, 4))
    feats, n = FeatureSource(tmp_path).load("video3", k=5)
    assert n == 5 and feats.shape == (5, 4) and feats.dtype == torch.float32
    assert feats[:, 0].tolist() == [8.0, 24.0, 40.0, 56.0, 72.0]  # rows 2, 6, 10, 14, 18
    short, n_short = FeatureSource(tmp_path).load("video3", k=32)
    assert n_short == 20 and short.shape == (20, 4)
    np.save(tmp_path / "bad.npy", np.zeros((3, 4, 5), dtype=np.float32))
    with pytest.raises(VideoFormatError) as info:
        FeatureSource(tmp_path).load("bad", k=5)
    assert "bad.npy" in str(info.value) and "(3, 4, 5)" in str(info.value)
    with pytest.raises(VideoReadError, match="absent.npy"):
        FeatureSource(tmp_path).load("absent", k=5)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(VideoReadError, match="junk.npy"):
        FeatureSource(tmp_path).load("junk", k=5)


def test_pad_clips_short_clip_masked():
    long = torch.ones(4, 3, 2, 2)
    short = torch.full((2, 3, 2, 2), 5.0)
    padded, mask = pad_clips([long, short], k=4)
    assert padded.shape == (2, 4, 3, 2, 2) and mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert torch.equal(padded[1, :2], short) and torch.all(padded[1, 2:] == 0)
    feats, fmask = pad_clips([torch.randn(1, 7), torch.zeros(0, 7)], k=3)
    assert feats.shape == (2, 3, 7) and fmask.tolist() == [[True, False, False], [False] * 3]
    with pytest.raises(ValueError, match="clip 0 has 4 frames"):
        pad_clips([long], k=3)
    with pytest.raises(ValueError, match="shape"):
        pad_clips([long, torch.ones(2, 3, 4, 4)], k=4)
