"""Task metrics: accuracy, F1, Matthews correlation (classification), Pearson and Spearman
correlation (regression), perplexity (language modelling).

A constant prediction has no correlation with anything: MCC, Pearson and Spearman are 0.0 then
(not NaN, so early-stop and tables stay comparable)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .config import CLASSIFICATION, LANGUAGE_MODELLING, REGRESSION  # noqa: F401 (re-exported)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy, F1 (of class 1 for two classes, as GLUE's MRPC/QQP; macro-averaged otherwise)
    and Matthews correlation (multi-class form), from logits ``[N, C]``."""
    from sklearn.metrics import f1_score, matthews_corrcoef

    pred = logits.argmax(-1).cpu().numpy()
    y = labels.cpu().numpy()
    binary = logits.shape[-1] == 2
    f1 = f1_score(y, pred, average="binary" if binary else "macro", zero_division=0.0)
    mcc = matthews_corrcoef(y, pred) if len(np.unique(pred)) > 1 and len(np.unique(y)) > 1 else 0.0
    return {"accuracy": float((pred == y).mean()), "f1": float(f1), "mcc": float(mcc)}


def regression_metrics(predictions: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    p = predictions.reshape(-1).double().cpu().numpy()
    y = labels.reshape(-1).double().cpu().numpy()
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return {"pearson": 0.0, "spearman": 0.0}
    return {"pearson": float(pearsonr(p, y).statistic), "spearman": float(spearmanr(p, y).statistic)}


def perplexity(total_nll: float, tokens: int) -> float:
    """exp of the mean negative log-likelihood per predicted token (inf past float range)."""
    mean = total_nll / tokens
    return math.exp(mean) if mean < 700 else math.inf
