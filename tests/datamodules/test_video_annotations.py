"""datamodules.video_annotations: MSVD CSV and MSR-VTT JSON in their real formats, every error named; the video
datamodule on a corpus folder: missing caption files, empty splits and unreadable videos named."""

import csv
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from datamodules.video_annotations import VideoCaptions, VideoFormatError, load_msrvtt, load_msvd
from datamodules.video_frames import VideoReadError
from suite.configs import task_datamodule
from text.captions import clean_caption

MSVD_HEADER = ["VideoID", "Start", "End", "WorkerID", "Source", "AnnotationTime", "Language", "Description"]


def _row(video: str, start: int, end: int, language: str, text: str) -> list[str]:
    return [video, str(start), str(end), "1", "clean", "17", language, text]


def write_msvd(path: Path, header: list[str] = MSVD_HEADER, rows: list[list[str]] | None = None) -> Path:
    """A small ``MSR Video Description Corpus.csv``: 5 clips, non-English rows, an empty and a quoted description."""
    if rows is None:
        rows = [
            _row("mv89psg6zh4", 33, 46, "English", "A bird is bathing in a sink."),
            _row("mv89psg6zh4", 33, 46, "Spanish", "Un pájaro se baña."),
            _row("mv89psg6zh4", 33, 46, "English", "A bird's splashing, around!"),
            _row("60x_yxy7Sfw", 1, 9, "German", "Eine Frau kocht."),  # first appearance: non-English row
            _row("60x_yxy7Sfw", 1, 9, "English", "A woman is cooking, and talking"),
            _row("-4wsuPCjDBc", 5, 15, "English", "   ...  "),  # empty after cleaning
            _row("-4wsuPCjDBc", 5, 15, "English", "A man plays a guitar"),
            _row("-_hbPLsZvvo", 19, 25, "English", "A dog runs"),
            _row("mv89psg6zh4", 33, 46, "English", "Birds bathe"),  # a later row of the first clip
            _row("zzit5b_-ukg", 5, 20, "French", "Un chat"),  # a clip with no English caption
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def msvd(tmp_path) -> Path:
    return write_msvd(tmp_path / "MSR Video Description Corpus.csv")


def test_clean_caption():
    assert clean_caption("A bird's splashing, around!") == "a birds splashing around"
    assert clean_caption("  ...  ") == ""


def test_msvd_train_keys_order_and_captions(msvd):
    clips, stats = load_msvd(msvd, "train", split_sizes=(2, 2, 1))
    assert clips == [
        VideoCaptions("mv89psg6zh4_33_46", ["a bird is bathing in a sink", "a birds splashing around", "birds bathe"]),
        VideoCaptions("60x_yxy7Sfw_1_9", ["a woman is cooking and talking"]),
    ]
    assert stats["non_english_rows"] == 3
    assert stats["empty_captions"] == 1
    assert stats["unassigned_clips"] == 0


def test_msvd_val_and_test(msvd):
    val, _ = load_msvd(msvd, "val", split_sizes=(2, 2, 1))
    assert [c.key for c in val] == ["-4wsuPCjDBc_5_15", "-_hbPLsZvvo_19_25"]
    assert val[0].captions == ["a man plays a guitar"]
    test, stats = load_msvd(msvd, "test", split_sizes=(2, 2, 1))
    assert test == []  # the last clip has only a French caption
    assert stats["clips_without_captions"] == 1


def test_msvd_unassigned_clips_counted(msvd):
    clips, stats = load_msvd(msvd, "train", split_sizes=(1, 1, 1))
    assert [c.key for c in clips] == ["mv89psg6zh4_33_46"]
    assert stats["unassigned_clips"] == 2


def test_msvd_too_few_clips_named(msvd):
    with pytest.raises(VideoFormatError, match=r"5 clips.*1970"):
        load_msvd(msvd, "train")


def test_msvd_missing_columns_named(tmp_path):
    header = ["VideoID", "Start", "WorkerID", "Lang", "Description"]
    path = write_msvd(tmp_path / "bad.csv", header=header, rows=[["a", "1", "2", "English", "x"]])
    with pytest.raises(VideoFormatError) as info:
        load_msvd(path, "train", split_sizes=(1, 0, 0))
    assert "'End'" in str(info.value) and "'Language'" in str(info.value) and str(path) in str(info.value)


def test_msvd_bad_split_and_missing_file(msvd, tmp_path):
    with pytest.raises(VideoFormatError, match="unknown MSVD split"):
        load_msvd(msvd, "validate", split_sizes=(1, 1, 1))
    with pytest.raises(VideoFormatError, match="not found"):
        load_msvd(tmp_path / "nope.csv", "train")


def write_msrvtt(tmp_path: Path) -> list[Path]:
    """MSR-VTT ``train_val_videodatainfo.json`` + ``test_videodatainfo.json`` with the real fields."""
    train_val = {
        "info": {"year": 2016},
        "videos": [
            {
                "category": 9,
                "url": "u",
                "video_id": "video0",
                "start time": 137.72,
                "end time": 149.44,
                "split": "train",
                "id": 0,
            },
            {
                "category": 16,
                "url": "u",
                "video_id": "video1",
                "start time": 184.33,
                "end time": 206.89,
                "split": "train",
                "id": 1,
            },
            {
                "category": 9,
                "url": "u",
                "video_id": "video2",
                "start time": 31.17,
                "end time": 41.24,
                "split": "validate",
                "id": 2,
            },
            {
                "category": 9,
                "url": "u",
                "video_id": "video3",
                "start time": 1.0,
                "end time": 11.0,
                "split": "train",
                "id": 3,
            },
        ],
        "sentences": [
            {"caption": "A car is shown.", "video_id": "video0", "sen_id": 0},
            {"caption": "a man drives a CAR", "video_id": "video0", "sen_id": 1},
            {"caption": "people dancing", "video_id": "video1", "sen_id": 2},
            {"caption": "!!!", "video_id": "video1", "sen_id": 3},
            {"caption": "a cartoon plays", "video_id": "video2", "sen_id": 4},
            {"caption": "orphan", "video_id": "video999", "sen_id": 5},
        ],
    }
    test = {
        "videos": [{"video_id": "video7010", "split": "test", "id": 7010}],
        "sentences": [{"caption": "A woman sings", "video_id": "video7010", "sen_id": 9}],
    }
    paths = [tmp_path / "train_val_videodatainfo.json", tmp_path / "test_videodatainfo.json"]
    for path, data in zip(paths, (train_val, test), strict=True):
        path.write_text(json.dumps(data), encoding="utf-8")
    return paths


def test_msrvtt_splits(tmp_path):
    paths = write_msrvtt(tmp_path)
    train, stats = load_msrvtt(paths, "train")
    assert train == [
        VideoCaptions("video0", ["a car is shown", "a man drives a car"]),
        VideoCaptions("video1", ["people dancing"]),
    ]
    assert stats == {"empty_captions": 1, "videos_without_captions": 1, "sentences_of_unknown_videos": 1}
    val, _ = load_msrvtt(paths, "val")
    assert val == [VideoCaptions("video2", ["a cartoon plays"])]
    assert load_msrvtt(paths, "validate")[0] == val
    test, _ = load_msrvtt(paths[1], "test")
    assert test == [VideoCaptions("video7010", ["a woman sings"])]


def test_msrvtt_missing_field_named(tmp_path):
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text(
        json.dumps({"videos": [{"video_id": "video0", "split": "train"}, {"video_id": "video1"}], "sentences": []})
    )
    with pytest.raises(VideoFormatError) as info:
        load_msrvtt(path, "train")
    assert "videos[1]" in str(info.value) and "'split'" in str(info.value) and str(path) in str(info.value)
    path.write_text(json.dumps({"videos": [], "sentences": [{"video_id": "video0"}]}))
    with pytest.raises(VideoFormatError, match=r"sentences\[0\].*'caption'"):
        load_msrvtt(path, "train")


def test_msrvtt_bad_inputs(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"videos": [{"video_id": "v", "split": "training"}], "sentences": []}))
    with pytest.raises(VideoFormatError, match="unknown split 'training'"):
        load_msrvtt(path, "train")
    path.write_text("{not json")
    with pytest.raises(VideoFormatError, match="not a JSON file"):
        load_msrvtt(path, "train")
    with pytest.raises(VideoFormatError, match="unknown MSR-VTT split"):
        load_msrvtt(path, "dev")


def test_msrvtt_json_list_instead_of_object_named(tmp_path):
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text(json.dumps([{"video_id": "video0", "split": "train"}]))
    with pytest.raises(VideoFormatError, match=rf"{re.escape(str(path))}: expected a JSON object .*got list"):
        load_msrvtt(path, "train")


# --- the datamodule on a corpus folder: missing caption files and empty splits are named errors ----------------

MSRVTT_KEYS = {"train": ["video0", "video1"], "val": ["video2"], "test": ["video7010"]}


def write_msrvtt_corpus(root: Path, videos: tuple[str, ...] = ("video0", "video1", "video2", "video7010"),
                        frames: int = 4) -> Path:
    """``write_msrvtt``'s two JSON files and a short mp4 in ``root/videos`` for each of ``videos``."""
    from tests.datamodules.test_video_frames import write_video

    (root / "videos").mkdir(parents=True, exist_ok=True)
    write_msrvtt(root)
    for n, key in enumerate(videos):
        write_video(root / "videos" / f"{key}.mp4", [(200, 40 * n, 40)] * frames, size=16)
    return root


def video_data(source: str, root: Path, **data_args):
    return task_datamodule("video_captioning", source=source, root=str(root), num_frames=4, image_size=16,
                           batch_size=2, eval_batch_size=2, num_workers=0, **data_args)


def test_msrvtt_datamodule_reads_the_corpus(tmp_path):
    data = video_data("msrvtt", write_msrvtt_corpus(tmp_path))
    data.setup("fit")
    assert [r.key for r in data.splits["train"].records] == MSRVTT_KEYS["train"]
    batch = next(iter(data.train_dataloader()))
    assert batch["frames"].shape == (2, 4, 3, 16, 16)


def test_msrvtt_missing_annotation_file_is_named(tmp_path):
    write_msrvtt_corpus(tmp_path)
    (tmp_path / "test_videodatainfo.json").unlink()
    data = video_data("msrvtt", tmp_path)
    with pytest.raises(VideoFormatError, match=r"annotation file\(s\) not found under data.root=.*: "
                       r"test_videodatainfo.json \(looked for .*\).*train_val_videodatainfo.json.*"
                       r"data.annotations=\[<file.json>, ...\] picks the files you have"):
        data.setup("fit")
    # naming the files there reads them; a split none of them holds is an error naming it, not 0 batches
    data = video_data("msrvtt", tmp_path, annotations=["train_val_videodatainfo.json"])
    data.setup("fit")
    assert len(data.splits["train"]) == 2 and len(data.splits["val"]) == 1
    with pytest.raises(VideoFormatError, match=r"the test split is empty: .*train_val_videodatainfo.json list 0 "
                       r"test clip\(s\).*No video there has split 'test'"):
        data.setup("test")


def test_msrvtt_every_default_file_missing_is_named(tmp_path):
    (tmp_path / "captions.json").write_text("{}")
    with pytest.raises(VideoFormatError, match=r"train_val_videodatainfo.json, test_videodatainfo.json \(looked "
                       r"for .*\); \.csv/\.json files in .*: \['captions.json'\]"):
        video_data("msrvtt", tmp_path).setup("fit")


def test_msvd_missing_csv_is_named(tmp_path):
    with pytest.raises(VideoFormatError, match=r"not found under data.root=.*: MSR Video Description Corpus.csv "
                       r"\(looked for .*\); .csv/.json files in .*: none\. data.annotations=<file.csv> picks"):
        video_data("msvd", tmp_path).setup("fit")


def test_empty_split_after_filtering_names_split_and_counts(tmp_path):
    write_msvd(tmp_path / "MSR Video Description Corpus.csv")
    from tests.datamodules.test_video_frames import write_video

    (tmp_path / "videos").mkdir()
    for key in ("mv89psg6zh4_33_46", "60x_yxy7Sfw_1_9", "-4wsuPCjDBc_5_15", "-_hbPLsZvvo_19_25"):
        write_video(tmp_path / "videos" / f"{key}.mp4", [(200, 30, 40)] * 4, size=16)
    data = video_data("msvd", tmp_path, msvd_split_sizes=(2, 2, 1))
    data.setup("fit")
    # the one test clip has only a French caption: the split is empty, and says what emptied it
    with pytest.raises(VideoFormatError, match=r"data.source=msvd: the test split is empty: .*MSR Video Description "
                       r"Corpus.csv list 1 test clip\(s\); dropped or not assigned: .*clips_without_captions 1"):
        data.setup("test")
    with pytest.raises(VideoFormatError, match=r"the val split is empty: .* list 0 val clip\(s\).*"
                       r"data.msvd_split_sizes=\[4, 0, 1\] gives it no clips"):
        video_data("msvd", tmp_path, msvd_split_sizes=(4, 0, 1)).setup("fit")


def test_every_video_skipped_is_an_empty_split_error(tmp_path, caplog):
    write_msrvtt_corpus(tmp_path, videos=("video0", "video1", "video7010"))  # video2, the only val clip, missing
    with pytest.raises(FileNotFoundError, match=r"1 val clips have no video under .*videos, e.g. video2"):
        video_data("msrvtt", tmp_path).setup("fit")
    with caplog.at_level("WARNING"), pytest.raises(
        VideoFormatError, match=r"the val split is empty: .* list 1 val clip\(s\); dropped or not assigned: "
        r".*missing_videos 1\. data.skip_bad_videos=true skipped all 1 without video under .*videos"):
        video_data("msrvtt", tmp_path, skip_bad_videos=True).setup("fit")
    assert re.search(r"msrvtt val: .*missing_videos 1", caplog.text)


def test_video_without_frames_stops_the_loader_naming_it(tmp_path):
    from tests.datamodules.test_video_frames import write_frameless_video

    write_msrvtt_corpus(tmp_path, videos=("video0", "video2", "video7010"))
    write_frameless_video(tmp_path / "videos" / "video1.avi")
    data = video_data("msrvtt", tmp_path)
    data.setup("fit")
    with pytest.raises(VideoReadError, match=r"video .*videos/video1\.avi has no decodable frames"):
        list(data.train_dataloader())


def test_frame_folder_without_images_stops_the_loader_naming_it(tmp_path):
    write_msrvtt(tmp_path)
    for key in ("video0", "video1", "video2"):
        (tmp_path / "frames" / key).mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 30, 40)).save(tmp_path / "frames" / "video0" / "0001.jpg")
    Image.new("RGB", (8, 8), (200, 30, 40)).save(tmp_path / "frames" / "video2" / "0001.jpg")
    data = video_data("msrvtt", tmp_path, frames="folder", frames_dir="frames")
    data.setup("fit")
    with pytest.raises(VideoReadError, match=r"frame folder .*frames/video1 has no frames"):
        list(data.train_dataloader())
