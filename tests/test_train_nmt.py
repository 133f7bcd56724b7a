"""The translation task through train.py's flow on the real composed config (in-process, shrunk data)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from suite.run import run
from tasks.nmt import TranslationModel
from tests.conftest import count_compiled_scores, metrics_one_process_and_ddp, run_cli

SMALL_DATA = ["data.sizes.train=200", "data.sizes.val=16", "data.sizes.test=16", "data.vocab_size=100",
              "data.batch_size=16", "data.eval_batch_size=16", "model.embed_dim=16", "model.hidden_dim=16",
              "model.attention_dim=16", "model.beam_size=2"]
SHORT = [*SMALL_DATA, "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
         "trainer.limit_test_batches=1"]


@pytest.mark.parametrize("attention", ["bahdanau", "luong_dot", "luong_general"])
def test_fast_dev_run_each_attention(make_cfg, attention):
    metrics = run(make_cfg("task=nmt", f"model.attention={attention}", "trainer.fast_dev_run=true", *SMALL_DATA))
    assert {"test/bleu", "test/perplexity", "test/loss", "val/bleu"} <= set(metrics)
    assert 0.0 <= metrics["test/bleu"] <= 100.0 and metrics["test/perplexity"] >= 1.0


def test_fit_writes_alignments_translations_and_a_checkpoint_that_translates_alone(make_cfg):
    cfg = make_cfg("task=nmt", *SHORT, "data.tokenizer=word")
    run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    logged = {key for row in rows for key, value in row.items() if value}
    assert {"val/bleu", "val/perplexity", "test/bleu", "train/loss_epoch"} <= logged
    assert next((run_dir / "figures" / "val_alignment").glob("*.png")).stat().st_size > 3000
    table = next((run_dir / "tables" / "val_translations").glob("*.md")).read_text()
    assert table.startswith("| source | reference | translation |")
    model = TranslationModel.load_from_checkpoint(next((run_dir / "checkpoints").glob("epoch*.ckpt")),
                                                  weights_only=True).eval()
    translations = model.translate(["twenty-one", "three hundred"])
    assert len(translations) == 2 and all(isinstance(t, str) for t in translations)


def test_checkpoint_without_tokenisers_is_refused_with_a_reason(make_cfg, tmp_path):
    cfg = make_cfg("task=nmt", *SHORT, "test=false")
    run(cfg)
    checkpoint = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    del checkpoint["target_vocabulary"]
    torch.save(checkpoint, tmp_path / "old.ckpt")
    with pytest.raises(KeyError, match="target_vocabulary"):
        TranslationModel.load_from_checkpoint(tmp_path / "old.ckpt", weights_only=True)


def test_unknown_embedded_language_lists_the_supported_ones(make_cfg):
    with pytest.raises(ValueError, match=r"target language .xx. \(data.target_lang\).*supports.*\bfr\b"):
        run(make_cfg("task=nmt", "data.target_lang=xx", "trainer.fast_dev_run=true", *SMALL_DATA))


def test_multi30k_preset_runs_on_files_in_the_real_layout(make_cfg, tmp_path):
    pairs = [("ein Mann fährt Fahrrad .", "a man rides a bike ."), ("zwei Hunde spielen .", "two dogs play ."),
             ("eine Frau läuft .", "a woman runs ."), ("ein Kind isst .", "a child eats .")]
    for split in ("train", "val", "test"):
        (tmp_path / f"{split}.de").write_text("".join(f"{de}\n" for de, _ in pairs), encoding="utf-8")
        (tmp_path / f"{split}.en").write_text("".join(f"{en}\n" for _, en in pairs), encoding="utf-8")
    cfg = make_cfg("experiment=nmt_multi30k", f"data.root={tmp_path}", "trainer.fast_dev_run=true",
                   "data.vocab_size=60", "model.embed_dim=16", "model.hidden_dim=16", "model.attention_dim=16",
                   "trainer.precision=32-true", "data.batch_size=2")
    assert cfg.data.source == "files" and cfg.model.attention == "bahdanau"
    metrics = run(cfg)
    assert "test/bleu" in metrics


@pytest.mark.timeout(600)
def test_ddp_test_metrics_equal_one_process_metrics(tmp_path):
    """Corpus SacreBLEU, perplexity and length on two DDP CPU ranks (8 test pairs each) equal one process's."""
    common = ["task=nmt", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.precision=32-true",
              "trainer.enable_progress_bar=false", *SMALL_DATA, "data.eval_batch_size=4"]
    keys = ("test/bleu", "test/loss", "test/perplexity", "test/length")
    metrics = metrics_one_process_and_ddp(common, keys, tmp_path, ("trainer.limit_train_batches=3",))
    assert metrics["single"]["test/perplexity"] >= 1.0
    # the same sums over other batchings: equal to float32 rounding (perplexity is exp(loss), so relative)
    assert metrics["ddp"] == pytest.approx(metrics["single"], rel=1e-6, abs=1e-5)


def test_compile_decoding_scores_with_the_fused_kernel_and_decodes_the_same(make_cfg, monkeypatch, caplog):
    """compile_decoding=true: beam search in validation and test runs through the compiled fused attention score
    (torch.compile; needs a C++ compiler on the CPU) and gives the eager run's metrics. (The exponential form, which
    the fused score computes, is switched on here whatever this CPU's capability.)"""
    import modules.additive_score_cpu as score_cpu

    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (torch.backends.cpu.get_cpu_capability(),))
    overrides = ["task=nmt", "model.attention=bahdanau", "trainer.fast_dev_run=true", *SMALL_DATA]
    eager = run(make_cfg(*overrides))
    compiled = count_compiled_scores(monkeypatch)
    with caplog.at_level("INFO"):
        fused = run(make_cfg(*overrides, "compile_decoding=true"))
    assert "compile_decoding: 1 additive attention(s) score decoding and evaluation" in caplog.text
    assert compiled, "no score was computed by the compiled kernel"
    assert "fused attention score unavailable" not in caplog.text
    for key in ("val/bleu", "test/bleu", "test/perplexity"):
        assert fused[key] == pytest.approx(eager[key], rel=1e-5, abs=1e-6), key


@pytest.mark.timeout(600)
def test_ddp_training_on_two_processes_matches_one_process(tmp_path):
    """A decoder task trained under DDP (two CPU ranks, batch b each) follows the one-process run with batch 2b: the
    same validation loss every epoch and the same weights, to float noise. (Dropout off: ranks draw other masks.)"""
    common = ["task=nmt", "trainer=cpu", "logger=csv", "data.num_workers=0", "trainer.enable_progress_bar=false",
              "trainer.precision=32-true", "model.dropout=0", "data.sizes.train=1280", "data.sizes.val=32",
              "data.eval_batch_size=16", "trainer.max_epochs=2", "test=false"]
    runs = {"single": ["data.batch_size=32"], "ddp": ["trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=16"]}
    val_loss, weights = {}, {}
    for name, extra in runs.items():
        done = run_cli("train.py", *common, *extra, f"hydra.run.dir={name}", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        rows = csv.DictReader(open(tmp_path / name / "csv" / "metrics.csv"))
        val_loss[name] = [float(row["val/loss"]) for row in rows if row.get("val/loss")]
        state = torch.load(tmp_path / name / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        weights[name] = torch.cat([value.flatten() for value in state.values() if value.is_floating_point()])
    assert len(val_loss["single"]) == 2
    assert val_loss["ddp"] == pytest.approx(val_loss["single"], rel=2e-3)
    assert (weights["ddp"] - weights["single"]).norm() < 0.01 * weights["single"].norm()
