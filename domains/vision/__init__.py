"""Vision: image classifiers (LeNet-300-100, ...) on MNIST-style data, trained with accelerate."""

from .config import VisionConfig

__all__ = ["VisionConfig", "VisionDomain"]


def __getattr__(name: str):
    if name == "VisionDomain":  # imported on first use: it brings torch (configs are checked without it)
        from .domain import VisionDomain

        return VisionDomain
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
