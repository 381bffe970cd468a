"""NLP: Hugging Face transformers (pre-trained, e.g. the offline MiniLM, or BERT/GPT-2 from a
config) for text classification (GLUE, the shipped sentiment set, the user's files) and causal
language modelling (the shipped corpus, any text dataset), trained with accelerate."""

from .data import DatasetSpec
from .domain import NLPConfig, NLPDomain
from .models import ModelSpec

__all__ = ["DatasetSpec", "ModelSpec", "NLPConfig", "NLPDomain"]
