"""NLP: a small BERT trained from scratch for text classification (a shipped sentiment set, or any
``datasets.load_dataset`` source), trained with accelerate."""

from .data import DatasetSpec
from .domain import BertSettings, NLPConfig, NLPDomain

__all__ = ["BertSettings", "DatasetSpec", "NLPConfig", "NLPDomain"]
