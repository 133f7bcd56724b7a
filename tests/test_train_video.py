"""The video captioning task: temporal attention over frames, through train.py's flow and as a module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from datamodules.video_captions import VideoCaptionDataModule
from suite.configs import task_datamodule, task_model
from suite.run import run
from tasks.video_captioning import VideoCaptioner
from tests.conftest import metrics_one_process_and_ddp

SMALL = ["data.num_clips.train=12", "data.num_clips.val=4", "data.num_clips.test=4", "data.batch_size=4",
         "data.eval_batch_size=4", "data.num_frames=8", "model.hidden_dim=32", "model.embed_dim=16",
         "model.attention_dim=16", "model.beam_size=2", "model.max_decode_len=8"]
EVAL = {"bleu4", "cider", "attention_entropy", "loss"}
# the MSVD preset's ImageNet ResNet-152, shrunk: no download, a small trunk and grid
SMALL_RESNET = ["model.encoder.pretrained=false", "model.encoder.arch=resnet18", "model.encoder.grid_size=1"]


@pytest.mark.parametrize("temporal", ["attention", "mean"])
def test_fast_dev_run(make_cfg, temporal):
    metrics = run(make_cfg("task=video_captioning", f"model.temporal={temporal}", "trainer.fast_dev_run=true",
                           *SMALL))
    assert {f"test/{name}" for name in EVAL} <= set(metrics)


def test_fit_writes_the_frame_attention_figure(make_cfg):
    cfg = make_cfg("task=video_captioning", *SMALL, "trainer.max_epochs=1", "trainer.limit_val_batches=1",
                   "test=false")
    run(cfg)
    figure = next((Path(cfg.paths.output_dir) / "figures" / "val_frame_attention").glob("*.png"))
    assert figure.stat().st_size > 5000


@pytest.fixture(scope="module")
def data() -> VideoCaptionDataModule:
    datamodule = task_datamodule("video_captioning", num_clips={"train": 8, "val": 4, "test": 4}, num_frames=8,
                                 batch_size=4, num_workers=0, seed=1)
    datamodule.setup("fit")
    return datamodule


def small_model(data: VideoCaptionDataModule, *overrides: str, **kwargs) -> VideoCaptioner:
    """configs/task/video_captioning.yaml's model at test size (Hydra ``overrides`` such as model/encoder=resnet)."""
    torch.manual_seed(0)
    args = {"embed_dim": 32, "hidden_dim": 64, "attention_dim": 32, "dropout": 0.0, "alpha_c": 0.0,
            "num_frames": data.hparams.num_frames, **kwargs}
    if not overrides:
        args["encoder"] = {"channels": [16, 32, 32], **args.get("encoder", {})}
    provided = {"vocabulary": data.vocabulary, "image_size": data.image_size, "feature_dim": None}
    if "feature_dim" in args:
        provided["feature_dim"] = args.pop("feature_dim")
    return task_model("video_captioning", provided, *overrides, **args)


def test_frame_encoder_batched_equals_one_frame_at_a_time(data):
    model = small_model(data).eval()
    batch = next(iter(data.val_dataloader()))
    memory, mask = model.memory(batch, "val")                                            # [B, T, D]
    one = torch.stack([torch.stack([model.encoder(frame[None]).mean(1)[0] for frame in clip])
                       for clip in batch["frames"]])
    torch.testing.assert_close(memory, one, atol=1e-5, rtol=1e-4)
    assert mask.all()


def test_padded_frames_of_a_shorter_clip_get_zero_attention(data):
    model = small_model(data).eval()
    batch = next(iter(data.val_dataloader()))
    batch["frame_mask"][0, 5:] = False                                                  # clip 0 has 5 real frames
    memory, mask = model.memory(batch, "val")
    out = model.decoder(memory, mask, batch["tokens"][:, :-1])
    assert (out.attention[0, :, 5:] == 0).all() and (out.attention[1:, :, 5:] > 0).all()


def test_overfits_one_batch_and_decodes_its_captions(data):
    model = small_model(data)
    batch = next(iter(data.val_dataloader()))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        memory, mask = model.memory(batch, "train")
        losses = model.training_losses(model.decoder(memory, mask, batch["tokens"][:, :-1]), batch["tokens"])
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
    assert losses["nll"] < 0.1
    model.eval()
    decoded = [data.vocabulary.decode(h.tokens) for h in model.generate_clips(batch["frames"], beam_size=2)]
    assert decoded == data.vocabulary.decode_batch(batch["tokens"])


def test_temporal_correctness_on_maps_that_look_at_the_named_event(data):
    model = small_model(data).eval()
    batch = next(iter(data.val_dataloader()))
    ids = batch["event_words"][:, 0, :1]                                   # [B, 1]: the first event's colour
    frames = batch["event_frames"][:, 0].float()                                         # [B, T]
    on_event = frames / frames.sum(-1, keepdim=True)
    mass, uniform = model.grounded_mass(batch, ids, on_event[:, None])
    torch.testing.assert_close(mass, torch.ones_like(mass))
    assert (uniform > 0).all() and uniform.min() < 1  # a word naming the object of both events covers all frames


def test_unknown_temporal_mode_lists_the_choices(data):
    with pytest.raises(ValueError, match=r"model.temporal='lstm'.*\['attention', 'mean'\]"):
        small_model(data, temporal="lstm")


def test_msvd_preset_on_real_video_files_and_missing_videos(make_cfg, tmp_path):
    from tests.datamodules.test_video_annotations import write_msvd
    from tests.datamodules.test_video_frames import write_video

    write_msvd(tmp_path / "MSR Video Description Corpus.csv")
    keys = ["mv89psg6zh4_33_46", "60x_yxy7Sfw_1_9", "-4wsuPCjDBc_5_15", "-_hbPLsZvvo_19_25"]
    (tmp_path / "videos").mkdir()
    for n, key in enumerate(keys[:3]):  # the last clip's video is missing; one video is shorter than num_frames
        write_video(tmp_path / "videos" / f"{key}.mp4", [(200, 30 * n, 40)] * (4 if n == 0 else 10))
    overrides = ["experiment=video_msvd", f"data.root={tmp_path}", "data.msvd_split_sizes=[2,1,1]",
                 "data.num_frames=6", "data.image_size=32", *SMALL_RESNET, "model.hidden_dim=16",
                 "model.embed_dim=8", "model.attention_dim=8", "data.batch_size=2", "trainer.precision=32-true",
                 "trainer.fast_dev_run=true", "model.beam_size=2"]
    with pytest.raises(FileNotFoundError, match="skip_bad_videos"):
        run(make_cfg(*overrides))
    metrics = run(make_cfg(*overrides, "data.skip_bad_videos=true", "test=false"))
    assert "val/cider" in metrics


def test_precomputed_frame_features_from_npy_files(make_cfg, tmp_path):
    import numpy as np

    from tests.datamodules.test_video_annotations import write_msvd

    write_msvd(tmp_path / "MSR Video Description Corpus.csv")
    (tmp_path / "feats").mkdir()
    keys = ["mv89psg6zh4_33_46", "60x_yxy7Sfw_1_9", "-4wsuPCjDBc_5_15", "-_hbPLsZvvo_19_25"]
    for n, key in enumerate(keys):
        np.save(tmp_path / "feats" / f"{key}.npy", np.random.default_rng(n).normal(size=(3 + n, 20)).astype("f4"))
    cfg = make_cfg("experiment=video_msvd", f"data.root={tmp_path}", "data.msvd_split_sizes=[2,1,1]",
                   "data.frames=features", "data.frames_dir=feats", "data.num_frames=5", *SMALL_RESNET,
                   "data.image_size=32", "model.hidden_dim=16", "model.embed_dim=8", "model.attention_dim=8",
                   "data.batch_size=2", "trainer.precision=32-true", "trainer.fast_dev_run=true")
    metrics = run(cfg)
    assert "test/cider" in metrics
    data = task_datamodule("video_captioning", source="msvd", root=str(tmp_path), frames="features", frames_dir="feats",
                                  num_frames=5, msvd_split_sizes=(2, 1, 1), batch_size=2, num_workers=0)
    batch = next(iter(data.train_dataloader()))
    assert data.feature_dim == 20 and batch["features"].shape == (2, 5, 20)
    assert set(batch["frame_mask"].sum(1).tolist()) <= {3, 4}  # clips of 3 and 4 rows, padded to 5 and masked


def test_cached_frame_features_equal_the_frozen_encoder_run_on_the_frames(data):
    """cache_features: each clip's per-frame features computed once (fp16) equal the frozen encoder's output."""
    model = small_model(data, "model/encoder=resnet", encoder={"arch": "resnet18", "grid_size": 2},
                        cache_features=True).eval()

    class Trainer:  # what cached_features reads from the trainer
        datamodule, is_global_zero = data, True

    model._trainer = Trainer()
    try:
        batch = next(iter(data.val_dataloader()))
        cached, _ = model.memory(batch, "val")                                               # [B, T, D]
        computed, _ = model.memory(batch, "predict")                                         # never cached
    finally:
        model._trainer = None
    assert cached.shape == computed.shape == (4, 8, model.encoder.out_dim)
    torch.testing.assert_close(cached, computed, atol=2e-3, rtol=2e-3)
    assert model._feature_caches["val"].features.shape == (len(data.clip_loader("val").dataset), 8, 512)


def test_cache_features_trains_through_train_py_and_refuses_disk_features(make_cfg, data):
    metrics = run(make_cfg("task=video_captioning", *SMALL, "model/encoder=resnet", "model.encoder.arch=resnet18",
                           "model.encoder.grid_size=2", "model.cache_features=true",
                           "trainer.fast_dev_run=true"))
    assert {f"test/{name}" for name in EVAL} <= set(metrics)
    with pytest.raises(ValueError, match="drop cache_features"):
        small_model(data, feature_dim=16, cache_features=True)


@pytest.mark.timeout(600)
def test_ddp_test_metrics_equal_one_process_metrics(tmp_path):
    """Caption scores and attention correctness on two DDP CPU ranks (2 test clips each) equal one process's."""
    common = ["task=video_captioning", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.precision=32-true",
              "trainer.enable_progress_bar=false", *SMALL, "data.eval_batch_size=2"]
    keys = ("test/bleu1", "test/bleu4", "test/cider", "test/attention_entropy", "test/attention_correctness",
            "test/attention_correctness_uniform")
    metrics = metrics_one_process_and_ddp(common, keys, tmp_path, ("trainer.limit_train_batches=3",))
    assert 0 < metrics["single"]["test/attention_correctness_uniform"] < 1
    assert metrics["ddp"] == pytest.approx(metrics["single"], abs=1e-6)
