"""Every real-format data source once through train.py's flow (``suite.run.run``, fast_dev_run) on a tiny fixture in
its real layout, with tiny models. Sources run elsewhere: the Karpathy presets (tests/test_train_captioning.py),
MSVD video files and features (tests/test_train_video.py), VQA v2 (tests/test_train_vqa.py), the Multi30k ``files``
preset (tests/test_train_nmt.py) and the MNIST presets (tests/test_train_stn.py)."""

from __future__ import annotations

import pytest
from PIL import Image

from suite.run import run
from tests.idx_fixtures import write_raw

TINY_VIDEO = ["task=video_captioning", "data.num_frames=4", "data.image_size=16", "model.encoder.channels=[8]",
              "model.hidden_dim=16", "model.embed_dim=8", "model.attention_dim=8", "data.batch_size=2",
              "data.eval_batch_size=2", "model.beam_size=2", "model.max_decode_len=6", "trainer.fast_dev_run=true"]
TINY_NMT = ["task=nmt", "data.source_lang=de", "data.target_lang=en", "data.tokenizer=word", "model.embed_dim=8",
            "model.hidden_dim=8", "model.attention_dim=8", "data.batch_size=2", "data.eval_batch_size=2",
            "model.beam_size=2", "model.max_decode_len=8", "trainer.fast_dev_run=true"]
TINY_STN = ["task=stn", "data.val_per_class=1", "data.batch_size=8", "model.channels=[4,8]", "model.hidden=16",
            "model.convs_per_stage=1", "trainer.fast_dev_run=true"]
PAIRS = [("ein Mann fährt Fahrrad .", "a man rides a bike ."), ("zwei Hunde spielen .", "two dogs play ."),
         ("eine Frau läuft .", "a woman runs ."), ("ein Kind isst .", "a child eats .")]


def test_msrvtt_json_and_mp4_videos(make_cfg, tmp_path):
    from tests.datamodules.test_video_annotations import write_msrvtt_corpus

    write_msrvtt_corpus(tmp_path)  # train_val_videodatainfo.json + test_videodatainfo.json, videos/video*.mp4
    cfg = make_cfg(*TINY_VIDEO, "data.source=msrvtt", f"data.root={tmp_path}", "data.frames_dir=videos")
    metrics = run(cfg)
    assert "test/cider" in metrics and "val/cider" in metrics


def test_msvd_csv_and_frame_folders(make_cfg, tmp_path):
    from tests.datamodules.test_video_annotations import write_msvd

    write_msvd(tmp_path / "MSR Video Description Corpus.csv")
    keys = ["mv89psg6zh4_33_46", "60x_yxy7Sfw_1_9", "-4wsuPCjDBc_5_15", "-_hbPLsZvvo_19_25"]
    for n, key in enumerate(keys):  # 3 to 6 JPEG frames per clip: the shorter ones padded and masked
        (tmp_path / "frames" / key).mkdir(parents=True)
        for i in range(3 + n):
            Image.new("RGB", (20, 16), (40 * i, 30 * n, 90)).save(tmp_path / "frames" / key / f"{i:04d}.jpg")
    cfg = make_cfg(*TINY_VIDEO, "data.source=msvd", f"data.root={tmp_path}", "data.frames=folder",
                   "data.frames_dir=frames", "data.msvd_split_sizes=[2,1,1]")
    metrics = run(cfg)
    assert "test/cider" in metrics and "val/cider" in metrics


@pytest.mark.parametrize("source", ["files", "tsv"])
def test_parallel_text_files_and_tsv(make_cfg, tmp_path, source):
    for split in ("train", "valid", "test"):  # "valid": one of the names the val split is found under
        if source == "tsv":
            (tmp_path / f"{split}.tsv").write_text("".join(f"{de}\t{en}\n" for de, en in PAIRS), encoding="utf-8")
        else:
            (tmp_path / f"{split}.de").write_text("".join(f"{de}\n" for de, _ in PAIRS), encoding="utf-8")
            (tmp_path / f"{split}.en").write_text("".join(f"{en}\n" for _, en in PAIRS), encoding="utf-8")
    metrics = run(make_cfg(*TINY_NMT, f"data.source={source}", f"data.root={tmp_path}"))
    assert "test/bleu" in metrics and "val/bleu" in metrics


@pytest.mark.parametrize(("source", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_mnist_and_fashion_mnist_idx_files(make_cfg, tmp_path, source, folder):
    write_raw(tmp_path / folder / "raw")  # torchvision's layout: idx files, two of them gzip-compressed
    metrics = run(make_cfg(*TINY_STN, f"data.source={source}", f"data.root={tmp_path}"))
    assert "test/error" in metrics and "val/error" in metrics

