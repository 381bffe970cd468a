"""Task metrics against their definitions; GLUE tasks through load_dataset in their own schema
(pairs, regression, three classes); masks hold through the accelerate loop and Trainer for GPT-2."""

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("transformers")

from nlp_fixtures import write_glue_task  # noqa: E402
from tickets.domain import check_domain  # noqa: E402
from tickets.enforce import MaskEnforcer  # noqa: E402
from tickets.masks import Mask  # noqa: E402
from tickets.typed import from_dict  # noqa: E402
from vision_fixtures import install_fake_hub  # noqa: E402

from domains.nlp import NLPDomain, metrics  # noqa: E402
from domains.nlp.tasks import GLUE  # noqa: E402

torch.set_num_threads(1)


def test_classification_metrics_match_their_definitions():
    labels = torch.tensor([1, 1, 1, 0, 0, 0, 1, 0])
    pred = torch.tensor([1, 1, 0, 0, 1, 0, 1, 0])  # tp 3, fn 1, fp 1, tn 3
    logits = torch.nn.functional.one_hot(pred, 2).float()
    m = metrics.classification_metrics(logits, labels)
    tp, tn, fp, fn = 3, 3, 1, 1
    assert m["accuracy"] == 6 / 8
    assert m["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert m["mcc"] == pytest.approx((tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
    constant = metrics.classification_metrics(torch.tensor([[1.0, 0.0]] * 8), labels)
    assert constant["mcc"] == 0.0 and constant["f1"] == 0.0 and constant["accuracy"] == 0.5


def test_regression_metrics_match_their_definitions():
    y = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    p = torch.tensor([0.0, 1.0, 4.0, 9.0, 16.0])  # monotone, not linear
    m = metrics.regression_metrics(p, y)
    yc, pc = y - y.mean(), p - p.mean()
    assert m["pearson"] == pytest.approx(float((yc * pc).sum() / (yc.norm() * pc.norm())), rel=1e-6)
    assert m["spearman"] == pytest.approx(1.0)
    assert metrics.regression_metrics(torch.ones(5), y) == {"pearson": 0.0, "spearman": 0.0}
    assert metrics.perplexity(math.log(7.0) * 10, 10) == pytest.approx(7.0)


@pytest.fixture
def glue(tmp_path, monkeypatch):
    hub = install_fake_hub(monkeypatch)
    for task in ("mrpc", "stsb", "mnli", "cola"):
        hub.add("nyu-mll/glue", write_glue_task(tmp_path / task, task), task)
    return hub


def glue_domain(task, **options):
    cfg = {"dataset": {"glue": task}, "batch_size": 8, "eval_batch_size": 64, "max_length": 24, **options}
    return NLPDomain(from_dict(NLPDomain.Config, cfg))


def test_a_sentence_pair_task_encodes_both_sentences_and_reports_f1(glue):
    d = glue_domain("mrpc")
    assert d.primary_metric == "f1" and d.data.num_labels == 2
    assert glue.calls[-1][:3] == ("nyu-mll/glue", "mrpc", ["train[5%:]", "train[:5%]", "validation"])
    cols = d.data.train.columns
    assert (cols["token_type_ids"] == 1).any(dim=1).all()  # the second sentence is segment 1
    assert ((cols["input_ids"] == d.data.tokenizer.sep_token_id).sum(dim=1) == 2).all()
    assert {"accuracy", "f1", "mcc"} <= set(check_domain(d, steps=2))


def test_stsb_is_regression_with_pearson(glue):
    d = glue_domain("stsb")
    assert d.data.num_labels == 1 and d.data.train.columns["labels"].dtype == torch.float32
    model = d.build_model(seed=0)
    assert model.config.problem_type == "regression" and model.classifier.out_features == 1
    m = d.evaluate(model, "validation")
    assert d.primary_metric == "pearson" and {"pearson", "spearman", "loss"} <= set(m)
    batch = d.data.train.__getitems__(list(range(4)))
    loss, logits = d.loss(model, batch, train=False)
    assert loss.item() == pytest.approx(torch.nn.functional.mse_loss(logits.squeeze(-1), batch["labels"]).item())


def test_mnli_has_three_classes_and_its_matched_dev_set(glue):
    d = glue_domain("mnli")
    assert d.data.num_labels == 3 and glue.calls[-1][2][2] == "validation_matched"
    assert GLUE["mnli"].metric == d.primary_metric == "accuracy"


def test_cola_reports_matthews_correlation(glue):
    assert glue_domain("cola").primary_metric == "mcc"


GPT2 = {"architecture": "gpt2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64}


@pytest.mark.parametrize("task", ["causal_lm", "classification"])
def test_pruned_gpt2_weights_stay_zero_through_the_accelerate_loop(task):
    d = NLPDomain(from_dict(NLPDomain.Config, {"task": task, "model": GPT2, "tokenizer": "shipped", "batch_size": 8,
                                               "max_length": 32, "optimizer": {"name": "adamw", "lr": 1e-2,
                                                                               "weight_decay": 0.1}}))
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    assert sorted({n.split(".", 3)[3] for n in prunable}) == ["attn.c_attn.weight", "attn.c_proj.weight",
                                                               "mlp.c_fc.weight", "mlp.c_proj.weight"]
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in prunable.items()})
    before = {n: p.detach().clone() for n, p in prunable.items()}
    with MaskEnforcer(prunable, mask):
        d.train(model, steps=4, seed=0)
    for n, p in prunable.items():
        assert torch.all(p.detach()[~mask[n]] == 0.0), n
        assert not torch.equal(p.detach()[mask[n]], before[n][mask[n]]), f"{n} did not train"
    metric = d.evaluate(model, "test")
    assert d.primary_metric in metric and math.isfinite(metric[d.primary_metric])
    if task == "causal_lm":
        assert d.higher_is_better is False
        assert metric["perplexity"] == pytest.approx(math.exp(metric["loss"]), rel=1e-5)


def test_pruned_gpt2_weights_stay_zero_through_trainer(tmp_path):
    from transformers import Trainer, TrainingArguments

    d = NLPDomain(from_dict(NLPDomain.Config, {"task": "causal_lm", "model": GPT2, "tokenizer": "shipped",
                                               "max_length": 32}))
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    g = torch.Generator().manual_seed(1)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.3 for n, p in prunable.items()})
    before = {n: p.detach().clone() for n, p in prunable.items()}
    rows = [d.data.train[i] for i in range(32)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8, learning_rate=0.01,
                             weight_decay=0.01, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    with MaskEnforcer(prunable, mask):
        Trainer(model=model, args=args, train_dataset=rows).train()
    for n, p in prunable.items():
        assert torch.all(p.detach()[~mask[n]] == 0.0), n
        assert not torch.equal(p.detach()[mask[n]], before[n][mask[n]]), f"{n} did not train"


def test_bf16_training_keeps_the_mask_and_reports_finite_perplexity():
    d = NLPDomain(from_dict(NLPDomain.Config, {"task": "causal_lm", "model": GPT2, "tokenizer": "shipped",
                                               "batch_size": 8, "max_length": 32, "mixed_precision": "bf16"}))
    model = d.build_model(seed=0)
    prunable = d.prunable(model)
    mask = Mask({n: torch.rand(p.shape, generator=torch.Generator().manual_seed(2)) < 0.5 for n, p in prunable.items()})
    with MaskEnforcer(prunable, mask):
        result = d.train(model, steps=3, seed=0, eval_every=3)
    assert all(torch.all(p.detach()[~mask[n]] == 0.0) for n, p in prunable.items())
    assert math.isfinite(result.history[-1]["perplexity"])


def test_perplexity_is_the_exp_of_the_mean_token_nll_computed_by_hand():
    d = NLPDomain(from_dict(NLPDomain.Config, {"task": "causal_lm", "model": GPT2, "tokenizer": "shipped",
                                               "max_length": 32, "eval_batch_size": 50}))
    model = d.build_model(seed=0).eval()
    table = d.data.validation
    assert len(table) % 50 != 0  # an uneven last batch
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for i in range(len(table)):
            ids = table.columns["input_ids"][i:i + 1]
            logits = model(input_ids=ids).logits[0, :-1].double()
            nll += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
            tokens += ids.shape[1] - 1
    got = d.evaluate(model, "validation")
    assert got["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)


def test_gpt2_classification_reads_the_last_real_token_whatever_the_padding():
    d = NLPDomain(from_dict(NLPDomain.Config, {"model": GPT2, "tokenizer": "shipped", "max_length": 32}))
    model = d.build_model(seed=0).eval()
    tok = d.data.tokenizer
    short = tok(["a fine movie"], padding="max_length", max_length=8, return_tensors="pt")
    long = tok(["a fine movie"], padding="max_length", max_length=32, return_tensors="pt")
    with torch.no_grad():
        a = model(input_ids=short["input_ids"], attention_mask=short["attention_mask"]).logits
        b = model(input_ids=long["input_ids"], attention_mask=long["attention_mask"]).logits
    assert torch.allclose(a, b, atol=1e-5)
    assert model.config.pad_token_id == tok.pad_token_id
