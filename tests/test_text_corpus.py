"""The causal-LM corpus shipped in domains/nlp/data is exactly what scripts/make_text_corpus.py makes,
loads through ``datasets.load_dataset("text", ...)``, and has structure beyond word frequencies."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import importlib.util  # noqa: E402
import math  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "domains" / "nlp" / "data"
SPLITS = {"train": 4000, "validation": 400, "test": 400}


def load_script():
    spec = importlib.util.spec_from_file_location("make_text_corpus", ROOT / "scripts" / "make_text_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_lines(split):
    return (DATA / f"corpus_{split}.txt").read_text(encoding="utf-8").splitlines()


def test_generator_is_deterministic_and_matches_shipped_files(tmp_path, capsys):
    script = load_script()
    assert script.SPLITS == SPLITS
    for run in ("a", "b"):
        script.main(["--out", str(tmp_path / run)])
    out = capsys.readouterr().out
    assert "vocabulary:" in out and "4000 lines" in out
    for split in SPLITS:
        name = f"corpus_{split}.txt"
        first = (tmp_path / "a" / name).read_bytes()
        assert first == (tmp_path / "b" / name).read_bytes(), f"{name} differs between runs"
        assert first == (DATA / name).read_bytes(), f"shipped {name} is stale: rerun scripts/make_text_corpus.py"
    # Another seed gives another corpus.
    script.main(["--out", str(tmp_path / "c"), "--seed", "1"])
    assert (tmp_path / "c" / "corpus_train.txt").read_bytes() != (DATA / "corpus_train.txt").read_bytes()


def test_shipped_files_load_as_text_dataset(tmp_path):
    import datasets

    files = {split: str(DATA / f"corpus_{split}.txt") for split in SPLITS}
    ds = datasets.load_dataset("text", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert {split: ds[split].num_rows for split in SPLITS} == SPLITS
    assert ds["train"].column_names == ["text"]
    assert all(t and t == t.strip() for t in ds["validation"]["text"])
    assert ds["train"]["text"] == read_lines("train")


def test_corpus_size_and_vocabulary():
    assert (DATA / "corpus_train.txt").stat().st_size < 1_500_000
    lines = {split: read_lines(split) for split in SPLITS}
    assert {split: len(v) for split, v in lines.items()} == SPLITS
    vocab = Counter(w for split in SPLITS for line in lines[split] for w in line.split())
    assert 400 <= len(vocab) <= 800
    tokens = sum(vocab.values())
    assert 30 <= tokens / sum(SPLITS.values()) <= 60
    # Zipf-like: a few words dominate, many are rare.
    counts = sorted(vocab.values(), reverse=True)
    assert sum(counts[:20]) > 0.3 * tokens and sum(c < 20 for c in counts) > 50


def test_bigram_model_beats_unigram_on_validation():
    """A smoothed bigram model from train is far better than a unigram model on validation, so there
    is sequential structure to learn (a transformer should do better still)."""
    train = [line.split() + ["</s>"] for line in read_lines("train")]
    validation = [line.split() + ["</s>"] for line in read_lines("validation")]
    unigram = Counter(w for line in train for w in line)
    bigram = Counter(pair for line in train for pair in zip(["<s>"] + line[:-1], line))
    context = Counter(w for line in train for w in ["<s>"] + line[:-1])
    total, vocab = sum(unigram.values()), len(unigram) + 1  # one slot for unseen words

    def p_unigram(w):
        return (unigram[w] + 1) / (total + vocab)

    def p_bigram(prev, w, lam=0.9):  # interpolated with the unigram model
        if not context[prev]:
            return p_unigram(w)
        return lam * bigram[prev, w] / context[prev] + (1 - lam) * p_unigram(w)

    nll_uni = nll_bi = 0.0
    n = 0
    for line in validation:
        for prev, w in zip(["<s>"] + line[:-1], line):
            nll_uni -= math.log(p_unigram(w))
            nll_bi -= math.log(p_bigram(prev, w))
            n += 1
    ppl_uni, ppl_bi = math.exp(nll_uni / n), math.exp(nll_bi / n)
    assert ppl_uni > 50, ppl_uni
    assert ppl_bi < 0.25 * ppl_uni, (ppl_uni, ppl_bi)
