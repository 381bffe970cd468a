"""Vision: image classifiers (LeNet-300-100, ...) on MNIST-style data, trained with accelerate."""

from .domain import VisionConfig, VisionDomain

__all__ = ["VisionConfig", "VisionDomain"]
