"""Vision models (plain torch): ``build(name, input_shape, num_classes, width=None)``.

``input_shape`` is (channels, height, width). ``width`` scales the channel counts of the models
that have one (None = the paper's value); the others refuse it.

================================  =========  ==========================================  ================
family (names)                    width      parameter names                             output layer
================================  =========  ==========================================  ================
LeNet (lenet_300_100, lenet_5)    none       convs.{i} (LeNet-5), hidden.{i}, output     ``output.weight``
Conv (conv_2, conv_4, conv_6)     first, 64  convs.{i}, hidden.{0,1}, output             ``output.weight``
CIFAR ResNet (resnet_20/32/56)    first, 16  conv1, bn1, stages.{s}.{b}.{conv1,bn1,       ``output.weight``
                                             conv2,bn2,shortcut.conv,shortcut.bn},
                                             output
ResNet-18 (resnet_18)             first, 64  as the CIFAR ResNets, four stages            ``output.weight``
VGG (vgg_11, vgg_16, vgg_19)      first, 64  layers.{i}.{conv,bn}, output                ``output.weight``
================================  =========  ==========================================  ================

So in every family the last Linear layer is ``output`` and the pattern ``output.weight`` (or
``output.*`` with its bias) selects it alone, e.g. to prune it at its own rate.

- LeNet and Conv (Frankle & Carbin 2019, Figure 2): ReLU, 2x2 max-pools, no normalisation;
  Gaussian Glorot weights, zero biases. LeNet-5 uses 5x5 unpadded convolutions, Conv-N 3x3
  'same' ones; the flattened size follows ``input_shape`` (28x28 and 32x32, 1 or 3 channels).
- ResNets and VGG: BatchNorm after every convolution, convolutions without bias, global average
  pool, one Linear output; Kaiming normal weights in fan_in mode (std sqrt(2 / fan_in), open_lth's
  ``kaiming_normal``) for convolutions and the output layer, zero output bias, BatchNorm weight 1
  and bias 0. Blocks that change shape use a 1x1 conv + BN projection shortcut (option B).
- ResNet-18 keeps the CIFAR stem (3x3 conv, stride 1, no max-pool) at every size: a 64x64
  (Tiny ImageNet) input ends in 8x8 maps before the global average pool. See ``resnet.py``.

Parameter counts at 3x32x32 -> 10 (weights and biases): LeNet-5 62,006; Conv-2 4,301,642;
Conv-4 2,425,930; Conv-6 2,262,602; ResNet-20 272,474; ResNet-32 466,906; ResNet-56 855,770;
ResNet-18 11,173,962; VGG-11 9,228,362; VGG-16 14,724,042; VGG-19 20,035,018. Frankle & Carbin's
Figure 2 gives Conv-2 4.3M, Conv-4 2.4M and Conv-6 1.7M weights (conv weights 38K, 260K, 1.1M):
the first two and all three conv counts agree, but Conv-6 as the figure lays it out (a 4x4x256
map into fc 256) has 2.26M, and no reading of those layers gives 1.7M.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from ..config import MODEL_WIDTHS
from .convfc import ConvFC, LeNet300100, conv_net, lenet_5, lenet_300_100
from .layers import Shape
from .resnet import BasicBlock, ResNet, cifar_resnet, resnet_18
from .vgg import VGG


@dataclass(frozen=True)
class ModelSpec:
    """``make(input_shape, num_classes[, width])``; ``default_width`` None: takes no width."""

    make: Callable[..., nn.Module]
    default_width: int | None = None

    def __call__(self, input_shape: Shape, num_classes: int, width: int | None = None) -> nn.Module:
        if self.default_width is None:
            if width is not None:
                raise ValueError("width: this model has no width to set")
            return self.make(input_shape, num_classes)
        return self.make(input_shape, num_classes, width=self.default_width if width is None else width)


_MAKERS: dict[str, Callable[..., nn.Module]] = {
    "lenet_300_100": lenet_300_100,
    "lenet_5": lenet_5,
    **{f"conv_{d}": partial(conv_net, d) for d in (2, 4, 6)},
    **{f"resnet_{d}": partial(cifar_resnet, d) for d in (20, 32, 56)},
    "resnet_18": resnet_18,
    **{f"vgg_{d}": partial(VGG, depth=d) for d in (11, 16, 19)},
}
if set(_MAKERS) != set(MODEL_WIDTHS):
    raise ImportError(f"domains.vision: models {sorted(set(_MAKERS) ^ set(MODEL_WIDTHS))} are missing from "
                      "either MODEL_WIDTHS (domains/vision/config.py) or the makers here")
MODELS: dict[str, ModelSpec] = {name: ModelSpec(_MAKERS[name], width) for name, width in MODEL_WIDTHS.items()}


def build(name: str, input_shape: Shape, num_classes: int, width: int | None = None) -> nn.Module:
    """A freshly initialised ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes``
    outputs (drawn from torch's global RNG: seed it for reproducible weights)."""
    if name not in MODELS:
        close = difflib.get_close_matches(name, MODELS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown vision model {name!r}{hint}; known: {', '.join(MODELS)}")
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
        raise ValueError(f"input_shape must be (channels, height, width), got {input_shape!r}")
    if width is not None:
        if MODELS[name].default_width is None:
            takes = [n for n, spec in MODELS.items() if spec.default_width is not None]
            raise ValueError(f"width: {name} takes no width (models that do: {', '.join(takes)})")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
    return MODELS[name](shape, num_classes, width)


__all__ = ["MODELS", "VGG", "BasicBlock", "ConvFC", "LeNet300100", "ModelSpec", "ResNet", "build"]
