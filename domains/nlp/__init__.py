"""NLP: Hugging Face transformers (pre-trained, e.g. the offline MiniLM, or BERT/GPT-2 from a
config) for text classification (GLUE, the shipped sentiment set, the user's files) and causal
language modelling (the shipped corpus, any text dataset), trained with accelerate."""

from .config import DatasetSpec, ModelSpec, NLPConfig

__all__ = ["DatasetSpec", "ModelSpec", "NLPConfig", "NLPDomain"]


def __getattr__(name: str):
    if name == "NLPDomain":  # imported on first use: it brings torch (configs are checked without it)
        from .domain import NLPDomain

        return NLPDomain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
