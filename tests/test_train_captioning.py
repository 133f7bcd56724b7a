"""The captioning task through train.py's flow on the real composed config (in-process, shrunk data)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from suite.configs import task_datamodule
from suite.run import run
from tasks.captioning import ImageCaptioner
from tests.conftest import metrics_one_process_and_ddp, raises_from_target, run_cli
from tests.karpathy_fixtures import coco_entries, write_dataset
from tests.wandb_records import logged_config, logged_history_keys

SMALL_DATA = ["data.num_images.train=48", "data.num_images.val=16", "data.num_images.test=16",
              "data.batch_size=16", "data.eval_batch_size=16", "model.beam_size=2", "model.max_decode_len=8"]
SHORT = [*SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1"]
# attention correctness needs emitted words that name objects, which an untrained model may not emit:
# tests/tasks/test_captioning_task.py checks it on known outputs
EVAL_METRICS = {"bleu1", "bleu2", "bleu3", "bleu4", "cider", "attention_entropy", "loss"}


@pytest.mark.parametrize("attention", ["soft", "hard"])
def test_fast_dev_run(make_cfg, attention):
    metrics = run(make_cfg("task=captioning", f"model.attention={attention}", "trainer.fast_dev_run=true",
                           *SMALL_DATA))
    assert {f"test/{name}" for name in EVAL_METRICS} <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    assert 0.0 <= metrics["test/bleu4"] <= 1.0 and metrics["test/cider"] >= 0.0
    if attention == "hard":
        assert {"train/reinforce_epoch", "train/attention_entropy_epoch", "train/baseline_epoch"} <= set(metrics)


def test_fit_then_test_writes_metrics_figure_table_and_a_checkpoint_that_captions_alone(make_cfg):
    cfg = make_cfg("task=captioning", *SHORT)
    metrics = run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {f"val/{name}" for name in EVAL_METRICS} | {"train/loss_epoch", "train/doubly_stochastic_epoch"} <= logged
    figure = next((run_dir / "figures" / "val_attention").glob("*.png"))
    assert figure.stat().st_size > 5000
    table = next((run_dir / "tables" / "val_captions").glob("*.md")).read_text()
    assert table.startswith("| generated | references |") and table.count("\n") >= 3

    best = next((run_dir / "checkpoints").glob("epoch*.ckpt"))
    model = ImageCaptioner.load_from_checkpoint(best, weights_only=True)  # no vocabulary passed: restored
    assert model.vocabulary is not None and len(model.vocabulary) == model.hparams.vocab_size
    model.eval()
    images = torch.rand(2, 3, 64, 64)
    captions = [model.vocabulary.decode(h.tokens) for h in model.generate(images)]
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert 0 <= metrics["test/cider"]


def test_checkpoint_without_vocabulary_is_refused_with_a_reason(make_cfg, tmp_path):
    cfg = make_cfg("task=captioning", *SHORT, "test=false")
    run(cfg)
    last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    del checkpoint["vocabulary"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.raises(KeyError, match=r"no \['vocabulary'\] entry"):
        ImageCaptioner.load_from_checkpoint(tmp_path / "old.ckpt", weights_only=True)


def test_unknown_attention_lists_the_choices(make_cfg):
    with raises_from_target(ValueError, r"model.attention='sharp'.*\['soft', 'hard'\]"):
        run(make_cfg("task=captioning", "model.attention=sharp", "trainer.fast_dev_run=true", *SMALL_DATA))


def test_wandb_offline_run_has_caption_metrics_attention_figure_and_table(tmp_path):
    result = run_cli("train.py", "task=captioning", "trainer=cpu", "logger=wandb", "data.num_workers=0",
                     "trainer.enable_progress_bar=false", *SHORT, cwd=tmp_path, env={"WANDB_MODE": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list(tmp_path.glob("outputs/captioning/*/wandb/offline-run-*"))
    assert len(runs) == 1
    log = next(runs[0].glob("run-*.wandb"))
    keys = logged_history_keys(log)
    assert {"val/cider", "val/bleu4", "val/attention_entropy", "test/cider", "train/loss_epoch",
            "val/attention/filenames"} <= keys
    assert any(key.startswith("val/captions") for key in keys)
    assert logged_config(log)["attention"] == "soft"
    assert list(runs[0].glob("files/media/images/val/attention_*.png"))
    assert list(runs[0].glob("files/media/table/val/captions_*.table.json"))


@pytest.mark.parametrize("experiment", ["sat_soft_flickr8k", "sat_hard_flickr8k", "sat_soft_coco"])
def test_paper_presets_run_on_a_karpathy_split_with_real_jpegs(make_cfg, tmp_path, experiment):
    entries = coco_entries()
    if "flickr" in experiment:  # Flickr layout: no filepath, images in Flicker8k_Dataset/
        entries = [{k: v for k, v in e.items() if k != "filepath"} for e in entries]
    (tmp_path / "data").mkdir()
    write_dataset(tmp_path / "data", entries, name="dataset_flickr8k.json" if "flickr" in experiment
                  else "dataset_coco.json")
    # shrunk to run here: ResNet-18 without the ImageNet download, 64px images, a small decoder
    cfg = make_cfg(f"experiment={experiment}", f"data.root={tmp_path / 'data'}", "trainer.fast_dev_run=true",
                   "model.encoder.pretrained=false", "model.encoder.arch=resnet18", "model.encoder.grid_size=2",
                   "data.image_size=64",
                   "model.hidden_dim=32", "model.embed_dim=16", "model.attention_dim=16", "data.batch_size=2",
                   "data.min_word_count=1", "trainer.precision=32-true")
    assert cfg.model.encoder._target_.endswith("ResNetGridEncoder") and cfg.data.source == "karpathy"
    metrics = run(cfg)
    assert "test/bleu4" in metrics and "test/attention_correctness" not in metrics  # no boxes in real data


@pytest.mark.timeout(600)
def test_ddp_test_scores_equal_one_process_scores(tmp_path):
    """Corpus BLEU and CIDEr-D under DDP (texts gathered from two CPU ranks) equal the one-process scores."""
    common = ["task=captioning", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.precision=32-true",
              "trainer.enable_progress_bar=false", *SMALL_DATA, "data.eval_batch_size=4"]
    scores = metrics_one_process_and_ddp(common, ("test/bleu1", "test/bleu4", "test/cider"), tmp_path,
                                         ("trainer.limit_train_batches=6",))
    assert scores["single"]["test/bleu1"] > 0
    assert scores["ddp"] == pytest.approx(scores["single"], abs=1e-6)


def test_feature_cache_for_a_frozen_encoder_matches_encoding_and_trains(make_cfg, tmp_path):
    (tmp_path / "data").mkdir()
    write_dataset(tmp_path / "data", coco_entries())
    cfg = make_cfg("task=captioning", "data.source=karpathy", f"data.root={tmp_path / 'data'}", "data.image_size=64",
                   "model/encoder=resnet", "model.encoder.arch=resnet18", "model.encoder.pretrained=false",
                   "model.encoder.trainable=none", "model.encoder.grid_size=2", "model.cache_features=true",
                   "data.batch_size=2",
                   "model.hidden_dim=32", "model.embed_dim=16", "model.attention_dim=16",
                   "trainer.max_epochs=1", "test=false")
    run(cfg)
    model = ImageCaptioner.load_from_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt",
                                                weights_only=True)
    assert model.hparams.cache_features

    data = task_datamodule("captioning", source="karpathy", root=str(tmp_path / "data"), image_size=64, batch_size=2,
                             num_workers=0)
    data.setup("fit")
    model.trainer = type("T", (), {"datamodule": data, "is_global_zero": True})()  # what memory() reads
    batch = next(iter(data.train_dataloader()))
    model.eval()
    cached, mask = model.memory(batch, "train")
    assert mask is None
    torch.testing.assert_close(cached, model.encoder(batch["image"]), atol=2e-2, rtol=2e-2)  # fp16 storage
    assert set(model._feature_caches) == {"train"} and len(model._feature_caches["train"]) == 3


def test_feature_cache_refuses_a_trainable_encoder(make_cfg):
    with raises_from_target(ValueError, "cache_features=true needs a frozen encoder"):
        run(make_cfg("task=captioning", "model.cache_features=true", "trainer.fast_dev_run=true", *SMALL_DATA))
