"""predict.py on every task: a tiny checkpoint trained here, the user's own files, outputs equal to the model's own
decoding, figures written, and the bad inputs a user can give."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict
from PIL import Image, ImageDraw

from suite.checkpoints import SUITE_KEY, CheckpointError, load_checkpoint
from suite.predict import run_prediction
from suite.run import run
from tasks.prediction.inputs import InputError
from tests.conftest import CONFIGS, FAST, compose_config, count_compiled_scores, run_cli
from tests.datamodules.test_video_frames import write_video

TINY = {
    "stn": ["data.batch_size=16", "trainer.limit_train_batches=2"],
    "captioning": ["data.num_images.train=32", "data.num_images.val=8", "data.num_images.test=8",
                   "data.batch_size=16", "model.beam_size=2", "model.max_decode_len=8",
                   "trainer.limit_train_batches=2"],
    "video_captioning": ["data.num_clips.train=8", "data.num_clips.val=4", "data.num_clips.test=4",
                         "data.batch_size=4", "data.eval_batch_size=4", "data.num_frames=8", "model.hidden_dim=32",
                         "model.embed_dim=16", "model.attention_dim=16", "model.beam_size=2",
                         "model.max_decode_len=8", "trainer.limit_train_batches=2"],
    "vqa": ["data.num_images.train=16", "data.num_images.val=4", "data.num_images.test=4", "data.batch_size=16",
            "data.eval_batch_size=16", "model.dim=32", "model.attention_dim=16", "model.embed_dim=16"],
    "nmt": ["data.sizes.train=200", "data.sizes.val=16", "data.sizes.test=16", "data.vocab_size=100",
            "data.batch_size=16", "data.eval_batch_size=16", "model.embed_dim=16", "model.hidden_dim=16",
            "model.attention_dim=16", "model.beam_size=2", "trainer.limit_train_batches=3"],
}


def train_checkpoint(task: str, folder: Path) -> Path:
    """A one-epoch run of ``task`` on tiny data through train.py's flow -> its last.ckpt."""
    cfg = compose_config([*FAST, f"task={task}", *TINY[task], "trainer.max_epochs=1", "trainer.limit_val_batches=1",
                          "test=false"], folder)
    run(cfg)
    GlobalHydra.instance().clear()
    return folder / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """One tiny checkpoint per task, trained once for the whole module (one thread: tiny models)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("checkpoints")
    paths = {task: train_checkpoint(task, root / task) for task in TINY}
    torch.set_num_threads(threads)
    return paths


def predict_config(checkpoint: Path, user_input: str | Path, output_dir: Path, **options: object) -> DictConfig:
    """configs/predict.yaml composed with this checkpoint, input and output folder (and options set after)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("predict", overrides=[f"ckpt_path={checkpoint}", "input=placeholder",
                                            f"output_dir={output_dir}"])
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.input = str(user_input)
        for key, value in options.items():
            cfg[key] = value
    return cfg


def draw_images(folder: Path, count: int, size: int = 48, mode: str = "RGB") -> list[Path]:
    """``count`` different pictures (coloured shapes) saved as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = Image.new(mode, (size + 7 * i, size), "white" if mode == "L" else (30 * i, 40, 60))
        draw = ImageDraw.Draw(image)
        draw.ellipse((5 + 4 * i, 8, 25 + 4 * i, 30), fill="black" if mode == "L" else (200, 40 * i, 90))
        paths.append(folder / f"picture{i}.png")
        image.save(paths[-1])
    return paths


def written(output_dir: Path, count: int) -> list[dict]:
    """The records of predictions.jsonl, checked to number ``count`` and each to have a non-trivial figure."""
    records = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == count
    for record in records:
        assert Path(record["figure"]).stat().st_size > 2000
    return records


def test_stn_folder_gives_each_digit_the_class_the_model_computes(checkpoints, tmp_path):
    from tasks.prediction.stn import digit_canvas

    paths = draw_images(tmp_path / "digits", 3, mode="L")
    records = run_prediction(predict_config(checkpoints["stn"], tmp_path / "digits", tmp_path / "out"))
    assert records == written(tmp_path / "out", 3)
    model = load_checkpoint(checkpoints["stn"]).model
    images = torch.stack([digit_canvas(Image.open(p).convert("L"), model.hparams.image_size, "auto") for p in paths])
    with torch.no_grad():
        probabilities = model(images)["logits"].softmax(-1)                                 # [3, 10]
    assert [r["class"] for r in records] == [model.class_names[i] for i in probabilities.argmax(-1).tolist()]
    assert [r["probability"] for r in records] == pytest.approx(probabilities.max(-1).values.tolist(), abs=1e-4)
    assert [Path(r["input"]).name for r in records] == [p.name for p in paths]


def test_digit_canvas_inverts_dark_on_light_and_keeps_light_on_dark():
    from tasks.prediction.stn import digit_canvas

    paper = Image.new("L", (20, 10), 255)
    ImageDraw.Draw(paper).rectangle((8, 2, 11, 7), fill=0)
    canvas = digit_canvas(paper, 20, "auto")                                                  # [1, 20, 20]
    assert canvas.shape == (1, 20, 20)
    assert canvas[0, 10, 10] > 0.9 and canvas[0, 0, 0] < 0.1  # digit light, padding and paper dark
    assert digit_canvas(paper, 20, "false")[0, 10, 10] < 0.1
    with pytest.raises(InputError, match="invert"):
        digit_canvas(paper, 20, "sometimes")


def test_captioning_equals_the_models_own_beam_search(checkpoints, tmp_path):
    from datamodules.caption_corpora import image_transform

    paths = draw_images(tmp_path / "photos", 2)
    records = run_prediction(predict_config(checkpoints["captioning"], tmp_path / "photos", tmp_path / "out",
                                            batch_size=2))
    written(tmp_path / "out", 2)
    model = load_checkpoint(checkpoints["captioning"]).model
    transform = image_transform(model.hparams.image_size)
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    expected = [model.vocabulary.decode(h.tokens) for h in model.generate(images)]
    assert [r["caption"] for r in records] == expected


def test_compile_decoding_gives_the_same_captions_through_the_fused_score(checkpoints, tmp_path, monkeypatch,
                                                                          caplog):
    import modules.additive_score_cpu as score_cpu

    monkeypatch.setattr(score_cpu, "EXP_FORM_CPU", (torch.backends.cpu.get_cpu_capability(),))
    draw_images(tmp_path / "photos", 2)
    eager = run_prediction(predict_config(checkpoints["captioning"], tmp_path / "photos", tmp_path / "eager",
                                          batch_size=2, figures=False))
    compiled = count_compiled_scores(monkeypatch)
    fused = run_prediction(predict_config(checkpoints["captioning"], tmp_path / "photos", tmp_path / "fused",
                                          batch_size=2, figures=False, compile_decoding=True))
    assert compiled, "no score was computed by the compiled kernel"
    assert "fused attention score unavailable" not in caplog.text
    assert [r["caption"] for r in fused] == [r["caption"] for r in eager]


def test_video_file_and_frame_folder_equal_the_models_own_decoding(checkpoints, tmp_path):
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "clip.mp4", [(200, 30, 30)] * 4 + [(30, 30, 200)] * 6)
    frames = tmp_path / "frames"
    for i, path in enumerate(draw_images(frames, 5)):
        path.rename(frames / f"frame{i:03d}.png")
    model = load_checkpoint(checkpoints["video_captioning"]).model
    for name, user_input in (("video", tmp_path / "clips" / "clip.mp4"), ("frames", frames)):
        records = run_prediction(predict_config(checkpoints["video_captioning"], user_input, tmp_path / name))
        (record,) = written(tmp_path / name, 1)
        assert record["frames"] == (5 if name == "frames" else model.hparams.num_frames)
        batch = next(iter(_loader_of(checkpoints["video_captioning"], user_input)))
        expected = [model.vocabulary.decode(h.tokens) for h in model.generate_clips(batch["frames"])]
        assert record["caption"] == expected[0] and records[0]["caption"] == expected[0]


def _loader_of(checkpoint: Path, user_input: Path):
    """The batches predict.py builds for this input (to decode them with the model's own method)."""
    from tasks.prediction import predictor_class
    from tasks.prediction.inputs import classify

    loaded = load_checkpoint(checkpoint)
    predictor = predictor_class(loaded.model)(loaded.model, loaded.config.data, predict_config(checkpoint, "x", "y"))
    items = predictor.items(str(user_input), classify(str(user_input)))
    return torch.utils.data.DataLoader([predictor.load(i) for i in items], batch_size=8, collate_fn=predictor.collate)


def test_vqa_question_over_a_folder_and_a_jsonl_file(checkpoints, tmp_path):
    from datamodules.caption_corpora import image_transform

    paths = draw_images(tmp_path / "scenes", 2, size=75)
    question = "what shape is the red object"
    records = run_prediction(predict_config(checkpoints["vqa"], tmp_path / "scenes", tmp_path / "out",
                                            question=question))
    written(tmp_path / "out", 2)
    model = load_checkpoint(checkpoints["vqa"]).model
    transform = image_transform(model.hparams.image_size)
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    ids, lengths = model.question_vocabulary.encode_batch([question] * 2)
    with torch.no_grad():
        logits, maps = model(images, ids, lengths)
    assert [r["answer"] for r in records] == [model.hparams.answers[i] for i in logits.argmax(-1).tolist()]
    assert all(len(r["top_answers"]) == 3 and r["top_answers"][0][0] == r["answer"] for r in records)
    assert "unknown_words" not in records[0]

    lines = tmp_path / "questions.jsonl"
    lines.write_text(json.dumps({"image": "scenes/picture1.png", "question": question + " zebra?"}) + "\n")
    (record,) = run_prediction(predict_config(checkpoints["vqa"], lines, tmp_path / "out2"))
    assert record["unknown_words"] == ["zebra", "?"] and record["input"].endswith("picture1.png")


def test_nmt_sentence_and_text_file_equal_translate(checkpoints, tmp_path):
    model = load_checkpoint(checkpoints["nmt"]).model
    (record,) = run_prediction(predict_config(checkpoints["nmt"], "three hundred and twelve", tmp_path / "one"))
    written(tmp_path / "one", 1)
    assert record["translation"] == model.translate(["three hundred and twelve"])[0]
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("seven\n\nforty two\nninety\n")
    records = run_prediction(predict_config(checkpoints["nmt"], sentences, tmp_path / "file", max_figures=1))
    assert [r["input"] for r in records] == [f"{sentences}:1", f"{sentences}:3", f"{sentences}:4"]
    assert [r["translation"] for r in records] == model.translate(["seven", "forty two", "ninety"])
    assert ["figure" in r for r in records] == [True, False, False]  # max_figures=1
    assert len(list((tmp_path / "file" / "figures").glob("*.png"))) == 1


@pytest.mark.parametrize(("task", "user_input", "message"), [
    ("nmt", "photo.png", "input file not found"),
    ("vqa", "{images}", "add question="),
    ("captioning", "a sentence about a cat", "image captioning model, which takes an image file or a folder of "
                                             "images; input 'a sentence about a cat' is a sentence"),
    ("nmt", "{images}", "translation model, which takes a sentence or a text file; input '.*' is a folder of images"),
    ("stn", "{clip}", "digit classification model.*is a video file"),
    ("video_captioning", "{images}/picture0.png", "video captioning model.*is an image file"),
    ("captioning", "{corrupt}", "cannot read image .*corrupt.png"),
    ("captioning", "{empty}", "holds no images"),
])
def test_bad_input_is_a_clear_error_naming_it(checkpoints, tmp_path, task, user_input, message):
    draw_images(tmp_path / "images", 1)
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 64)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "corrupt.png").write_bytes(b"not a png")
    (tmp_path / "empty").mkdir()
    user_input = user_input.format(images=tmp_path / "images", clip=tmp_path / "clip.mp4",
                                   corrupt=tmp_path / "bad", empty=tmp_path / "empty")
    with pytest.raises(InputError, match=message):
        run_prediction(predict_config(checkpoints[task], user_input, tmp_path / "out"))


def test_checkpoints_without_config_or_tokenizer_or_file_are_clear_errors(checkpoints, tmp_path):
    state = torch.load(checkpoints["nmt"], map_location="cpu", weights_only=True)
    older = {key: value for key, value in state.items() if key != SUITE_KEY}
    torch.save(older, tmp_path / "older.ckpt")
    with pytest.raises(CheckpointError, match="older version of the suite"):
        load_checkpoint(tmp_path / "older.ckpt")
    format_one = {**state, SUITE_KEY: {**state[SUITE_KEY], "format": 1}}   # flat encoder options, Python defaults
    torch.save(format_one, tmp_path / "format1.ckpt")
    with pytest.raises(CheckpointError, match="format1.ckpt is a checkpoint of format 1.*reads format 2"):
        load_checkpoint(tmp_path / "format1.ckpt")
    untokenised = {key: value for key, value in state.items() if key != "source_vocabulary"}
    torch.save(untokenised, tmp_path / "untokenised.ckpt")
    with pytest.raises(CheckpointError, match="source_vocabulary"):
        load_checkpoint(tmp_path / "untokenised.ckpt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("hello")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "text.ckpt")


def test_checkpoint_carries_task_class_and_config(checkpoints):
    loaded = load_checkpoint(checkpoints["vqa"])
    assert loaded.task == "vqa" and loaded.model_class == "tasks.vqa.StackedAttentionVQA"
    assert loaded.config.data.num_images.train == 16 and loaded.config.model.dim == 32
    assert not loaded.model.training


def test_predict_cli_writes_results_and_reports_errors_plainly(checkpoints, tmp_path):
    draw_images(tmp_path / "photos", 1)
    done = run_cli("predict.py", f"ckpt_path={checkpoints['captioning']}", f"input={tmp_path / 'photos'}",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    (record,) = written(tmp_path / "run", 1)
    assert record["caption"] in done.stdout + done.stderr
    failed = run_cli("predict.py", f"ckpt_path={checkpoints['captioning']}", "input=nothing/here.jpg",
                     f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    assert failed.returncode == 1
    assert "predict.py: input file not found: nothing/here.jpg" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_eval_scores_a_checkpoint_on_its_own_task_and_data(checkpoints, tmp_path):
    cfg = compose_config([*FAST, "task=nmt", "train=false", f"ckpt_path={checkpoints['nmt']}",
                          "data.eval_batch_size=8"], tmp_path / "eval")
    metrics = run(cfg)
    assert {"test/bleu", "test/loss", "test/perplexity"} <= set(metrics)
    assert np.isfinite(metrics["test/loss"])
    with pytest.raises(CheckpointError, match="task=vqa was asked, but .* is a nmt checkpoint"):
        run(compose_config([*FAST, "task=vqa", "train=false", f"ckpt_path={checkpoints['nmt']}"], tmp_path / "e2"))


def test_eval_cli_needs_only_the_checkpoint(checkpoints, tmp_path):
    done = run_cli("eval.py", f"ckpt_path={checkpoints['vqa']}", "logger=csv", "split=val",
                   "trainer=cpu", "data.num_workers=0", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"val/acc", "val/acc_non_relational", "val/acc_relational"} <= set(metrics)
    assert not any(key.startswith("test/") for key in metrics)


def test_eval_on_other_data_encodes_with_the_checkpoints_tokenisers(checkpoints, tmp_path):
    """data.* overrides that would train other tokenisers (here a smaller BPE vocabulary) still evaluate: the
    datamodule adopts the checkpoint's, so ids and the model's vocabulary sizes match."""
    cfg = compose_config([*FAST, "task=nmt", "train=false", f"ckpt_path={checkpoints['nmt']}", "data.vocab_size=60",
                          "data.eval_batch_size=8"], tmp_path / "eval")
    metrics = run(cfg)
    assert np.isfinite(metrics["test/loss"]) and 0 <= metrics["test/bleu"] <= 100
    saved = load_checkpoint(checkpoints["nmt"]).model
    from suite.checkpoints import read_checkpoint

    _, vocabularies = read_checkpoint(checkpoints["nmt"])
    assert set(vocabularies) == {"source_vocabulary", "target_vocabulary"}
    assert vocabularies["target_vocabulary"].to_json() == saved.target_vocabulary.to_json()


def test_every_text_datamodule_adopts_the_checkpoints_tokenisers(checkpoints):
    import hydra

    from suite.checkpoints import read_checkpoint
    from suite.evaluation import adopt_vocabularies

    for task in ("captioning", "video_captioning", "vqa", "nmt"):
        entry, vocabularies = read_checkpoint(checkpoints[task])
        datamodule = hydra.utils.instantiate(entry["config"]["data"])
        adopt_vocabularies(datamodule, vocabularies)
        assert vocabularies, task
        for name, vocabulary in vocabularies.items():
            assert getattr(datamodule, name) is vocabulary, (task, name)


@pytest.mark.parametrize(("task", "metrics"), [
    ("stn", {"test/error", "test/acc", "test/iou"}),
    ("captioning", {"test/bleu4", "test/cider", "test/attention_correctness"}),
    ("video_captioning", {"test/bleu4", "test/cider", "test/attention_correctness"}),
    ("vqa", {"test/acc", "test/acc_relational", "test/attention_correctness_hop1"}),
    ("nmt", {"test/bleu", "test/perplexity"}),
])
def test_eval_cli_scores_every_task_from_the_checkpoint_alone(checkpoints, tmp_path, task, metrics):
    done = run_cli("eval.py", f"ckpt_path={checkpoints[task]}", "logger=csv", "trainer=cpu", "data.num_workers=0",
                   f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    scored = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics <= set(scored) and all(np.isfinite(scored[key]) for key in metrics)


def test_video_features_file_folder_and_a_folder_of_videos(checkpoints, tmp_path):
    """A model trained on precomputed .npy frame features captions a .npy file and a folder of them; a frame model
    captions every video of a folder."""
    from tests.datamodules.test_video_annotations import write_msvd

    write_msvd(tmp_path / "msvd" / "MSR Video Description Corpus.csv")
    keys = ["mv89psg6zh4_33_46", "60x_yxy7Sfw_1_9", "-4wsuPCjDBc_5_15", "-_hbPLsZvvo_19_25"]
    (tmp_path / "msvd" / "feats").mkdir()
    for n, key in enumerate(keys):
        features = np.random.default_rng(n).normal(size=(3 + n, 12)).astype("f4")        # [T, F], T = 3..6
        np.save(tmp_path / "msvd" / "feats" / f"{key}.npy", features)
    cfg = compose_config([*FAST, "experiment=video_msvd", f"data.root={tmp_path / 'msvd'}", "data.frames=features",
                          "data.frames_dir=feats", "data.num_frames=5", "data.msvd_split_sizes=[2,1,1]",
                          "data.batch_size=2", "model.encoder.pretrained=false", "model.encoder.arch=resnet18",
                          "model.hidden_dim=16", "model.embed_dim=8", "model.attention_dim=8", "model.beam_size=2",
                          "trainer.precision=32-true", "trainer.max_epochs=1", "trainer.limit_val_batches=1",
                          "test=false"], tmp_path / "features_run")
    run(cfg)
    GlobalHydra.instance().clear()
    features_checkpoint = tmp_path / "features_run" / "checkpoints" / "last.ckpt"
    model = load_checkpoint(features_checkpoint).model
    one = tmp_path / "msvd" / "feats" / f"{keys[1]}.npy"
    (record,) = run_prediction(predict_config(features_checkpoint, one, tmp_path / "one"))
    batch = next(iter(_loader_of(features_checkpoint, one)))
    expected = model.decode_captions(*model.memory(batch, "predict"))["captions"]
    assert record["caption"] == expected[0] and record["frames"] == 4
    records = run_prediction(predict_config(features_checkpoint, tmp_path / "msvd" / "feats", tmp_path / "all"))
    assert [Path(r["input"]).stem for r in records] == sorted(keys)

    (tmp_path / "videos").mkdir()
    for n in range(2):
        write_video(tmp_path / "videos" / f"clip{n}.mp4", [(200, 30 * n, 30)] * (5 + n))
    records = run_prediction(predict_config(checkpoints["video_captioning"], tmp_path / "videos", tmp_path / "v"))
    written(tmp_path / "v", 2)
    assert [Path(r["input"]).name for r in records] == ["clip0.mp4", "clip1.mp4"]


@pytest.mark.parametrize(("content", "message"), [
    ('{"image": "a.png", "question": "what shape"}\n{"image": "a.png"\n', r"questions.jsonl:2: not valid JSON"),
    ('{"image": "a.png"}\n', r"questions.jsonl:1: needs a non-empty 'question' field"),
    ('["a.png", "what shape"]\n', r"questions.jsonl:1: needs a non-empty 'image' field"),
])
def test_jsonl_errors_name_the_file_and_line(checkpoints, tmp_path, content, message):
    (tmp_path / "questions.jsonl").write_text(content)
    with pytest.raises(InputError, match=message):
        run_prediction(predict_config(checkpoints["vqa"], tmp_path / "questions.jsonl", tmp_path / "out"))
