"""Models: a sequence of layers built from ``model`` of the config, mapping features to logits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from worker.engine.activations import get_activation
from worker.engine.config import ModelConfig
from worker.engine.initializers import get_initializer
from worker.engine.layers import ActivationLayer, Dense, Layer, Params
from worker.engine.registry import lookup


class Sequential:
    """Layers applied in order; backward runs them in reverse and collects every gradient."""

    def __init__(self, layers: list[Layer]) -> None:
        self.layers = layers

    def init_params(self, rng: np.random.Generator) -> Params:
        """Every layer's initial parameters in one dict, drawn in layer order."""
        params: Params = {}
        for layer in self.layers:
            params.update(layer.init_params(rng))
        return params

    def forward(self, params: Params, x: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        """The logits and one cache per layer."""
        caches = []
        for layer in self.layers:
            x, cache = layer.forward(params, x)
            caches.append(cache)
        return x, caches

    def backward(self, params: Params, caches: list[Any], grad: np.ndarray) -> Params:
        """dL/dθ for every parameter, given dL/dlogits."""
        grads: Params = {}
        for layer, cache in zip(reversed(self.layers), reversed(caches), strict=True):
            grad, layer_grads = layer.backward(params, cache, grad)
            grads.update(layer_grads)
        return grads

    def predict(self, params: Params, x: np.ndarray) -> np.ndarray:
        """The logits alone."""
        return self.forward(params, x)[0]


def build_softmax(config: ModelConfig, n_features: int, n_classes: int) -> Sequential:
    """Softmax regression: one Dense layer from the features to the class logits."""
    return Sequential([Dense("dense0", n_features, n_classes, get_initializer(config.init))])


def build_mlp(config: ModelConfig, n_features: int, n_classes: int) -> Sequential:
    """Dense + activation for each size in ``config.hidden``, then Dense to the class logits."""
    initializer = get_initializer(config.init)
    sizes = [n_features, *config.hidden]
    layers: list[Layer] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        layers += [
            Dense(f"dense{i}", n_in, n_out, initializer),
            ActivationLayer(get_activation(config.activation)),
        ]
    layers.append(Dense(f"dense{len(config.hidden)}", sizes[-1], n_classes, initializer))
    return Sequential(layers)


MODELS: dict[str, Callable[[ModelConfig, int, int], Sequential]] = {
    "softmax": build_softmax,
    "mlp": build_mlp,
}


def build_model(config: ModelConfig, n_features: int, n_classes: int) -> Sequential:
    """The model ``config.type`` names, sized for the data."""
    return lookup(MODELS, config.type, "model.type", "model")(config, n_features, n_classes)
