"""A user's dataset files that cannot make a split (a glob matching nothing, an empty or corrupt
file, a header-only csv, missing text cells, a split data_files lacks) are one ConfigError line
from the CLI, before any training and before a run directory exists; a validation split carved
from the training file by split expressions runs end to end."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import csv
import random
import re

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("datasets")
pytest.importorskip("transformers")

from domains.nlp import DatasetSpec
from tickets.cli import main
from tickets.config import load_experiment
from tickets.errors import ConfigError
from tickets.methods import make_runner
from tickets.typed import from_dict

torch.set_num_threads(1)

PROGRESS = re.compile(r"\[[\d:]+[<,][^\]]*/s\]$")  # a datasets progress bar (they write to stderr)
WORDS = ["good", "bad", "great", "awful", "fine", "dull", "movie", "plot", "acting", "story", "the", "a", "was", "very", "not"]


def nlp_experiment(dataset: dict, *, steps: int = 3) -> dict:
    """A 1-layer BERT built from a config, its tokenizer trained on the training texts."""
    return {"name": "files", "seed": 0, "train": {"steps": steps, "eval_every": steps},
            "pruning": {"levels": 1, "fraction": 0.2}, "controls": [],
            "domain": {"name": "nlp", "batch_size": 8, "eval_batch_size": 64, "max_length": 16, "tokenizer": "train",
                       "model": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 32},
                       "optimizer": {"name": "adamw", "lr": 1e-3}, "dataset": dataset}}


def vision_experiment(dataset: dict) -> dict:
    return {"name": "files", "seed": 0, "train": {"steps": 4, "eval_every": 2},
            "pruning": {"levels": 1, "fraction": 0.2}, "controls": [],
            "domain": {"name": "vision", "model": "lenet_300_100", "batch_size": 4,
                       "optimizer": {"name": "adam", "lr": 1e-3}, "dataset": dataset}}


def write_csv(path, rows, header=("text", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(6))
        rows.append((text, int(text.count("good") + text.count("great") > text.count("bad") + text.count("awful"))))
    return rows


def refused(capsys, tmp_path, experiment: dict) -> str:
    """Run the CLI on ``experiment``: exit 2, exactly one ``tickets: error:`` line on stderr, no
    traceback, nothing written under --out. Returns the message."""
    config = tmp_path / "experiment.yaml"
    config.write_text(yaml.safe_dump(experiment, sort_keys=False))
    out = tmp_path / "runs"
    capsys.readouterr()
    code = main(["run", str(config), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.search(line)]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("tickets: error: "), err
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return lines[0]


@pytest.fixture
def good_csv(tmp_path):
    return write_csv(tmp_path / "good.csv", sentiment_rows(24))


# ---------------------------------------------------------------------------------------------
# NLP: splits data_files lacks


def test_a_split_data_files_lacks_is_refused_with_the_carve(capsys, tmp_path, good_csv):
    message = refused(capsys, tmp_path, nlp_experiment({"path": "csv", "data_files": {"train": good_csv,
                                                                                      "test": good_csv}}))
    assert "validation_split: no 'validation' split in data_files (its splits: train, test)" in message
    assert "train_split: 'train[:90%]', validation_split: 'train[90%:]'" in message


def test_a_dataset_directory_without_a_validation_split_names_the_carve(capsys, tmp_path):
    folder = tmp_path / "reviews"
    folder.mkdir()
    write_csv(folder / "train.csv", sentiment_rows(12))
    message = refused(capsys, tmp_path, nlp_experiment({"path": str(folder)}))
    assert 'Unknown split "validation"' in message and "validation_split: 'train[90%:]'" in message


def test_the_split_rule_reads_the_base_of_split_expressions():
    files = {"train": "a.csv", "test": "b.csv"}
    from_dict(DatasetSpec, {"path": "csv", "data_files": files, "train_split": "train[:90%]",
                            "validation_split": "train[90%:]"})
    with pytest.raises(ConfigError, match=r"test_split: no 'tset' split in data_files \(its splits: train, test\)"):
        from_dict(DatasetSpec, {"path": "csv", "data_files": files, "validation_split": "train[90%:]",
                                "test_split": "tset[:50%]"})
    with pytest.raises(ConfigError, match=r"train_split: no 'dev' split"):
        from_dict(DatasetSpec, {"path": "csv", "data_files": files, "train_split": "dev",
                                "validation_split": "train"})


def test_a_validation_split_carved_from_the_training_file_runs(tmp_path):
    train = write_csv(tmp_path / "train.csv", sentiment_rows(40))
    test = write_csv(tmp_path / "test.csv", sentiment_rows(12, seed=1))
    exp = load_experiment(nlp_experiment({"path": "csv", "data_files": {"train": train, "test": test},
                                          "train_split": "train[:75%]", "validation_split": "train[75%:]"}))
    runner = make_runner(exp, tmp_path / "runs", show_progress=False)
    data = runner.domain.data
    assert (len(data.train), len(data.validation), len(data.test)) == (30, 10, 12)
    run = runner.execute()
    assert (run.path / "results.csv").is_file()


# ---------------------------------------------------------------------------------------------
# NLP: files without rows or texts, files that cannot be read


def test_a_header_only_csv_is_a_split_without_rows(capsys, tmp_path, good_csv):
    empty = write_csv(tmp_path / "header.csv", [])
    message = refused(capsys, tmp_path, nlp_experiment({"path": "csv", "data_files": {
        "train": empty, "validation": good_csv, "test": good_csv}}))
    assert "train_split: split 'train' has no rows" in message and "header.csv" in message


def test_all_text_cells_empty_names_the_column_split_and_row(capsys, tmp_path, good_csv):
    blank = write_csv(tmp_path / "blank.csv", [("", 1), ("", 0)])
    message = refused(capsys, tmp_path, nlp_experiment({"path": "csv", "data_files": {
        "train": blank, "validation": blank, "test": blank}}))
    assert "dataset.text_column: 'text' of row 1 of split 'train'" in message and "missing" in message


def test_one_missing_text_is_named_by_row(capsys, tmp_path, good_csv):
    holey = write_csv(tmp_path / "holey.csv", [("good movie", 1), ("bad plot", 0), ("", 1)])
    message = refused(capsys, tmp_path, nlp_experiment({"path": "csv", "data_files": {
        "train": good_csv, "validation": holey, "test": good_csv}}))
    assert "'text' of row 3 of split 'validation'" in message and "holey.csv" in message


def test_a_missing_text_pair_is_named(capsys, tmp_path):
    rows = [(t, "the plot", y) for t, y in sentiment_rows(8)]
    pairs = write_csv(tmp_path / "pairs.csv", rows, header=("sentence1", "sentence2", "label"))
    holey = write_csv(tmp_path / "holey.csv", [("good", "", 1)], header=("sentence1", "sentence2", "label"))
    message = refused(capsys, tmp_path, nlp_experiment({
        "path": "csv", "text_column": "sentence1", "text_pair_column": "sentence2",
        "data_files": {"train": pairs, "validation": pairs, "test": holey}}))
    assert "dataset.text_pair_column: 'sentence2' of row 1 of split 'test'" in message


def test_a_glob_matching_no_csv_names_the_split_and_pattern(capsys, tmp_path, good_csv):
    pattern = str(tmp_path / "nowhere" / "*.csv")
    message = refused(capsys, tmp_path, nlp_experiment({"path": "csv", "data_files": {
        "train": pattern, "validation": good_csv, "test": good_csv}}))
    assert "dataset.data_files: train:" in message and pattern in message and "matches no file" in message


def test_an_empty_file_is_refused(capsys, tmp_path, good_csv):
    (tmp_path / "zero.csv").write_bytes(b"")
    message = refused(capsys, tmp_path, nlp_experiment({"path": "csv", "data_files": {
        "train": good_csv, "validation": str(tmp_path / "zero.csv"), "test": good_csv}}))
    assert "dataset.data_files: validation:" in message and "empty" in message


@pytest.mark.parametrize("builder, content", [("parquet", b"PAR1 not really parquet at all"),
                                              ("json", b'{"text": "good", "label": 1}\n{"text": ')],
                         ids=["parquet", "json"])
def test_a_corrupt_file_names_the_split_and_file(capsys, tmp_path, builder, content):
    bad = tmp_path / f"bad.{builder}"
    bad.write_bytes(content)
    message = refused(capsys, tmp_path, nlp_experiment({"path": builder, "data_files": {
        "train": str(bad), "validation": str(bad), "test": str(bad)}}))
    assert "dataset.data_files: train: cannot read" in message and str(bad) in message


# ---------------------------------------------------------------------------------------------
# Vision: the same rules for image files


@pytest.fixture
def digit_folder(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    root = tmp_path / "digits"
    for i in range(30):
        folder = root / ("train" if i < 20 else "test") / f"c{d.target[i] % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((d.images[i] * 16).clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def test_an_imagefolder_glob_matching_no_file(capsys, tmp_path):
    message = refused(capsys, tmp_path, vision_experiment({"name": "imagefolder",
                                                           "data_files": {"train": "/nonexist/*.png"}}))
    assert message == "tickets: error: dataset.data_files: train: '/nonexist/*.png' matches no file"


def test_an_imagefolder_without_images(capsys, tmp_path, digit_folder):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("no images here\n")
    message = refused(capsys, tmp_path, vision_experiment({"name": "imagefolder", "data_files": {
        "train": str(digit_folder / "train" / "**" / "*.png"), "test": str(notes / "*.txt")}}))
    assert "dataset.data_files: test:" in message and "holds no images" in message


def test_a_corrupt_image_names_the_split(capsys, tmp_path, digit_folder):
    for i in range(4):
        broken = digit_folder / "broken" / f"c{i % 2}"
        broken.mkdir(parents=True, exist_ok=True)
        (broken / f"{i}.png").write_bytes(b"not a png" * 4)
    message = refused(capsys, tmp_path, vision_experiment({"name": "imagefolder", "data_files": {
        "train": str(digit_folder / "train" / "**" / "*.png"), "test": str(digit_folder / "broken" / "**" / "*.png")}}))
    assert "dataset.data_files: test:" in message and "cannot be read" in message


def test_image_parquet_without_rows_or_with_a_missing_image(capsys, tmp_path):
    import PIL.Image
    from datasets import Dataset, Features, Image, Value

    features = Features({"image": Image(), "label": Value("int64")})
    Dataset.from_dict({"image": [], "label": []}, features=features).to_parquet(str(tmp_path / "zero.parquet"))
    images = [PIL.Image.fromarray(np.full((8, 8), 20 * i, np.uint8)) for i in range(12)]
    images[4] = None
    Dataset.from_dict({"image": images, "label": [i % 2 for i in range(12)]},
                      features=features).to_parquet(str(tmp_path / "holey.parquet"))
    message = refused(capsys, tmp_path, vision_experiment({"name": "parquet",
                                                           "data_files": {"train": str(tmp_path / "zero.parquet")}}))
    assert "dataset.data_files: train:" in message and "holds no images" in message
    message = refused(capsys, tmp_path, vision_experiment({"name": "parquet",
                                                           "data_files": {"train": str(tmp_path / "holey.parquet")}}))
    assert "image_column: row 5 of the train split" in message and "no image" in message


def test_a_corrupt_parquet_names_the_split(capsys, tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is no parquet file")
    message = refused(capsys, tmp_path, vision_experiment({"name": "parquet", "data_files": {"train": str(bad)}}))
    assert "dataset.data_files: train: cannot read" in message and str(bad) in message
