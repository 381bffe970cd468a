"""An NLP config is checked without importing torch, transformers or datasets (domains/nlp/config.py),
and a bad domain value is refused with the same one line as when the check ran after them."""

from pathlib import Path

import pytest
from import_probe import LOAD, RUN, probe

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs" / "nlp").glob("*.yaml"))
HEAVY = ("torch", "transformers", "datasets", "accelerate", "numpy")

def python(script: str, *args: str) -> tuple[str, str]:
    return probe(HEAVY, script, *args)


def test_every_shipped_nlp_config_loads_without_heavy_imports():
    assert len(CONFIGS) >= 6
    out, err = python(LOAD, *CONFIGS)
    assert out == "heavy imported: []", err


def test_the_nlp_package_and_its_config_do_not_import_torch():
    out, err = python("import sys\nimport domains.nlp.config\n"
                      "print('heavy imported:', [m for m in HEAVY if m in sys.modules])")
    assert out == "heavy imported: []", err


KNOWN_KEYS = ("batch_size, cpu, dataset, eval_batch_size, grad_accumulation, max_grad_norm, max_length, "
              "mixed_precision, model, optimizer, schedule, task, tokenizer, vocab_size")


@pytest.mark.parametrize(("config", "override", "error"), [
    ("tiny_bert_sentiment", "domain.max_length=1",
     "config.domain.max_length: must be at least 3 ([CLS], a token, [SEP]), got 1"),
    ("tiny_bert_sentiment", "domain.modle=x",
     f"config.domain.modle: unknown key; did you mean 'model'? (known keys: {KNOWN_KEYS})"),
    ("tiny_bert_sentiment", "domain.vocab_size=3", "config.domain.vocab_size: must exceed the 5 special tokens, got 3"),
    ("tiny_bert_sentiment", "domain.dataset.glue=sst3",
     "config.domain.dataset.glue: 'sst3' is not a GLUE task (cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte); "
     "did you mean 'sst2'?"),
    ("tiny_bert_sentiment", "domain.dataset.metric=bleu",
     "config.domain.dataset.metric: 'bleu' is not one of accuracy, f1, mcc"),
    ("tiny_bert_sentiment", "domain.model.hidden_size=63",
     "config.domain.model.num_attention_heads: must divide hidden_size (63), got 2"),
    ("tiny_bert_sentiment", "domain.model.pretrained=./nowhere",
     "config.domain.model.pretrained: ./nowhere is not a model directory (no config.json)"),
    ("minilm_sentiment", "domain.tokenizer=train",
     "config.domain.tokenizer: 'train' trains a new vocabulary; a pre-trained model needs its own tokenizer "
     "(leave tokenizer unset)"),
    ("minilm_sentiment", "domain.model.hidden_size=32",
     "config.domain.model.hidden_size: only for a model built from a config; a pre-trained model has its own "
     "(set config attributes with overrides)"),
    ("gpt2_corpus_lm", "domain.dataset.glue=sst2",
     "config.domain.dataset.glue: GLUE tasks are classification; task is 'causal_lm'"),
])
def test_a_bad_domain_value_is_refused_before_torch_is_imported(config, override, error):
    out, err = python(RUN, "run", f"configs/nlp/{config}.yaml", override)
    assert out == "heavy imported: [] exit: 2", err
    assert err == f"tickets: error: {error}"
