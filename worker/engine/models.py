"""Models: hidden blocks (Dense → [batch norm] → activation → [dropout]) and a Dense head.

linear, logistic and softmax regression are the head alone; an MLP adds one block per size in
``model.hidden``. All parameters live in one flat vector (``Network.flat``) and all gradients
in another (``Network.grad``); ``params`` and ``grads`` name their views ("dense0.W",
"bn0.gamma", ...), so an optimizer updates every parameter with a few whole-vector operations.

Data flows feature-major, one column per sample (see `hpsearch.worker.engine.layers`):
``forward`` takes a batch ``x`` of shape (n_features + 1, B) whose last row is ones —
``augment(X)[rows].T`` — and returns the outputs (logits) of shape (n_outputs, B). The arrays
in between belong to a `Workspace` made once per batch size, so a training step allocates
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hpsearch.worker.engine.activations import Activation, get_activation
from hpsearch.worker.engine.config import ConfigError, ModelConfig
from hpsearch.worker.engine.initializers import Initializer
from hpsearch.worker.engine.layers import BatchNorm, BatchNormWork, Dense, Dropout
from hpsearch.worker.engine.losses import Loss, encode_targets
from hpsearch.worker.engine.registry import lookup

Array = np.ndarray
# train: batch statistics, running statistics updated, dropout on. eval: running statistics,
# no dropout. probe (LSUV): batch statistics without touching the running ones, no dropout.
Mode = Literal["train", "eval", "probe"]
EVAL_CHUNK = 2048  # columns per evaluation pass: bounds memory on large splits


@dataclass
class Hidden:
    """One hidden block."""

    dense: Dense
    activation: Activation
    batch_norm: BatchNorm | None = None
    dropout: Dropout | None = None


class BlockWork:
    """One block's arrays for a batch size. ``h`` is the block's output with a ones row
    appended (the next Dense layer's input); ``a`` holds the activation, which is ``h``'s top
    rows unless dropout needs the activation kept apart from its masked copy."""

    def __init__(self, block: Hidden, batch: int, dtype: np.dtype, train: bool) -> None:
        units = block.dense.n_out
        self.h = np.ones((units + 1, batch), dtype)
        self.hv = self.h[:units]
        apart = train and block.dropout is not None
        self.a = np.empty((units, batch), dtype) if apart else self.hv
        self.mask = np.empty((units, batch), dtype) if apart else None
        self.z = np.empty((units, batch), dtype) if block.batch_norm else None
        self.bn = BatchNormWork(units, batch, dtype, train) if block.batch_norm else None
        self.slope = np.empty((units, batch), dtype) if train else None  # f'(z) of the batch
        self.grad = np.empty((units, batch), dtype) if train else None


class Workspace:
    """Every array one forward (and, if ``train``, backward) pass needs at batch size B."""

    def __init__(self, net: Network, batch: int, train: bool) -> None:
        self.batch, self.train = batch, train
        self.blocks = [BlockWork(b, batch, net.dtype, train) for b in net.hidden]
        self.logits = np.empty((net.head.n_out, batch), net.dtype)
        # Dense i reads inputs[i] (None: the batch itself) and writes dL/dinput to grads_in[i].
        self.inputs: list[Array | None] = [None, *(w.h for w in self.blocks)]
        self.grads_in: list[Array | None] = [None, *(w.grad for w in self.blocks)]
        # Plain blocks (Dense → activation, the activation written straight into the next
        # layer's input) take a short path: a step's calls and lookups, bound once.
        plain = all(b.batch_norm is None for b in net.hidden)
        plain = plain and all(w.a is w.hv for w in self.blocks)
        self.plain_forward: list[tuple[Array, Array, Callable[..., Array], Array | None, Array]]
        self.plain_forward = []
        self.plain_backward: list[tuple] = []
        self.plain = plain
        if plain:
            self.plain_forward = [
                (b.dense.WbT, w.a, b.activation.forward, w.slope, w.h)
                for b, w in zip(net.hidden, self.blocks, strict=True)
            ]
        if plain and train:
            # Layer by layer from the head: (its input, None for the batch; dL/doutput and its
            # transpose; its dL/d[W; b] block and W; dL/dinput, None for the first layer, with
            # the activation backward and f' of the block below).
            grads = [*(w.grad for w in self.blocks), self.logits]
            for i in range(len(net.denses) - 1, -1, -1):
                dense, below = net.denses[i], (net.hidden[i - 1], self.blocks[i - 1]) if i else None
                self.plain_backward.append(
                    (
                        self.inputs[i],
                        grads[i],
                        grads[i].T,
                        dense.dWb,
                        dense.W,
                        self.grads_in[i],
                        below[0].activation.backward if below else None,
                        below[1].slope if below else None,
                    )
                )


class Network:
    """A model over one flat parameter vector; see the module docstring for the layout."""

    def __init__(self, hidden: list[Hidden], head: Dense, dtype: np.dtype | str) -> None:
        self.hidden, self.head, self.dtype = hidden, head, np.dtype(dtype)
        self.denses = [block.dense for block in hidden] + [head]
        layers = [*(x for b in hidden for x in (b.dense, b.batch_norm) if x is not None), head]
        size = sum(layer.size for layer in layers)
        self.flat, self.grad = np.zeros(size, self.dtype), np.zeros(size, self.dtype)
        self.params: dict[str, Array] = {}
        self.grads: dict[str, Array] = {}
        offset = 0
        for layer in layers:
            end = offset + layer.size
            layer.bind(self.flat[offset:end], self.grad[offset:end])
            for name, (value, grad) in layer.named().items():
                self.params[name], self.grads[name] = value, grad
            offset = end
        self._workspaces: dict[tuple[int, bool], Workspace] = {}
        self.dropout_rng = np.random.default_rng(0)  # the trainer gives it the trial's stream

    @property
    def n_features(self) -> int:
        return self.denses[0].n_in

    @property
    def n_outputs(self) -> int:
        return self.head.n_out

    def buffers(self) -> dict[str, Array]:
        """Non-learned state: batch norm's running statistics."""
        return {
            k: v for b in self.hidden if b.batch_norm for k, v in b.batch_norm.buffers().items()
        }

    def workspace(self, batch: int, train: bool) -> Workspace:
        """The arrays for batch size ``batch``, made on first use and kept."""
        key = (batch, train)
        if key not in self._workspaces:
            self._workspaces[key] = Workspace(self, batch, train)
        return self._workspaces[key]

    def init(
        self, initializer: Initializer, rng: np.random.Generator, sample: Array | None = None
    ) -> None:
        """Draw every weight in layer order; LSUV then needs ``sample``, rows of training X."""
        for dense in self.denses:
            dense.init(initializer, rng)
        for block in self.hidden:
            if block.batch_norm:
                block.batch_norm.init()
        if initializer.data_dependent:
            if sample is None:
                raise ValueError(f"{type(initializer).__name__} needs a batch of training data")
            self.lsuv(augment(sample, self.dtype).T)

    def _block_forward(self, i: int, x: Array, work: Workspace, mode: Mode) -> Array:
        block, w = self.hidden[i], work.blocks[i]
        block.dense.forward(x, w.z if block.batch_norm else w.a)
        if block.batch_norm and mode == "eval":
            block.batch_norm.forward_eval(w.z, w.a, w.bn)
        elif block.batch_norm:
            block.batch_norm.forward_train(w.z, w.a, w.bn, update=mode == "train")
        block.activation.forward(w.a, w.a, w.slope if mode == "train" else None)
        if w.mask is not None and mode == "train":
            block.dropout.forward(w.a, block.dropout.draw(w.mask, self.dropout_rng), w.hv)
        elif w.a is not w.hv:
            np.copyto(w.hv, w.a)
        return w.h

    def forward(self, x: Array, work: Workspace, mode: Mode = "train") -> Array:
        """The outputs for the batch ``x`` (n_features + 1, B), in ``work.logits``."""
        if work.plain and mode != "probe":
            train, dot = mode == "train", np.dot
            for WbT, a, activation, slope, h in work.plain_forward:
                dot(WbT, x, out=a)
                activation(a, a, slope if train else None)
                x = h
            return dot(self.head.WbT, x, out=work.logits)
        for i in range(len(self.hidden)):
            x = self._block_forward(i, x, work, mode)
        return self.head.forward(x, work.logits)

    def backward(self, x: Array, grad: Array, work: Workspace) -> None:
        """Fill ``self.grad`` from dL/doutputs (overwritten), after a "train" forward of ``x``."""
        if work.plain_backward and grad is work.logits:
            dot = np.dot
            for x_in, g, g_T, dWb, W, g_in, activation_backward, slope in work.plain_backward:
                dot(x if x_in is None else x_in, g_T, out=dWb)
                if g_in is not None:
                    dot(W, g, out=g_in)
                    activation_backward(g_in, slope)
            return
        self.head.backward(work.inputs[-1] if self.hidden else x, grad, work.grads_in[-1])
        for i in range(len(self.hidden) - 1, -1, -1):
            block, w = self.hidden[i], work.blocks[i]
            if w.mask is not None:
                block.dropout.backward(w.grad, w.mask)
            block.activation.backward(w.grad, w.slope)
            if block.batch_norm:
                block.batch_norm.backward(w.grad, w.bn)
            block.dense.backward(work.inputs[i] if i else x, w.grad, work.grads_in[i])

    def loss_and_gradient(self, X: Array, y: Array, loss: Loss, task: str) -> float:
        """L on the rows ``X`` with labels/values ``y`` in training mode; fills ``self.grad``."""
        x = augment(X, self.dtype).T
        t = encode_targets(y, self.n_outputs, task, self.dtype).T
        work = self.workspace(x.shape[1], train=True)
        logits = self.forward(x, work, "train")
        total = loss.loss_and_grad(logits, t, logits)
        self.backward(x, logits, work)
        return total / x.shape[1] if loss.mean else total

    def predict(self, X: Array) -> Array:
        """Evaluation-mode outputs for the rows ``X``, as rows (N, n_outputs)."""
        rows = augment(X, self.dtype)
        out = np.empty((len(rows), self.n_outputs), self.dtype)
        for start in range(0, len(rows), EVAL_CHUNK):
            chunk = rows[start : start + EVAL_CHUNK]
            work = self.workspace(len(chunk), train=False)
            out[start : start + len(chunk)] = self.forward(chunk.T, work, "eval").T
        return out

    def lsuv(self, x: Array, tol: float = 1e-3, max_iter: int = 10) -> None:
        """Rescale each Dense layer in turn until Var(z) = 1 on the batch ``x`` (probe mode)."""
        work = self.workspace(x.shape[1], train=True)
        for j, dense in enumerate(self.denses):
            for _ in range(max_iter):
                variance = float(self._pre_activation(j, x, work).var())
                if variance == 0.0 or not math.isfinite(variance) or abs(variance - 1) < tol:
                    break
                dense.W /= math.sqrt(variance)

    def _pre_activation(self, j: int, x: Array, work: Workspace) -> Array:
        for i in range(j):
            x = self._block_forward(i, x, work, "probe")
        if j == len(self.hidden):
            return self.head.forward(x, work.logits)
        w = work.blocks[j]
        return self.denses[j].forward(x, w.z if self.hidden[j].batch_norm else w.a)


def augment(X: Array, dtype: np.dtype | str) -> Array:
    """Rows of X with a column of ones appended, as a C-contiguous array of ``dtype``."""
    rows = np.empty((X.shape[0], X.shape[1] + 1), dtype)
    rows[:, :-1] = X
    rows[:, -1] = 1.0
    return rows


def _hidden_blocks(config: ModelConfig, n_features: int) -> list[Hidden]:
    sizes = [n_features, *config.hidden]
    blocks = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        blocks.append(
            Hidden(
                Dense(f"dense{i}", n_in, n_out),
                get_activation(config.activation, config.leaky_slope),
                BatchNorm(f"bn{i}", n_out, config.batch_norm_momentum)
                if config.batch_norm
                else None,
                Dropout(config.dropout) if config.dropout > 0 else None,
            )
        )
    return blocks


def build_regression(config: ModelConfig, n_features: int, n_outputs: int, dtype: str) -> Network:
    """linear, logistic and softmax regression: one Dense layer from features to outputs."""
    return Network([], Dense("dense0", n_features, n_outputs), dtype)


def build_mlp(config: ModelConfig, n_features: int, n_outputs: int, dtype: str) -> Network:
    """Hidden blocks for ``config.hidden``, then a Dense head to the outputs."""
    blocks = _hidden_blocks(config, n_features)
    last = config.hidden[-1] if config.hidden else n_features
    return Network(blocks, Dense(f"dense{len(blocks)}", last, n_outputs), dtype)


MODELS: dict[str, Callable[[ModelConfig, int, int, str], Network]] = {
    "linear": build_regression,
    "logistic": build_regression,
    "softmax": build_regression,
    "mlp": build_mlp,
}


def build_model(config: ModelConfig, n_features: int, n_outputs: int, dtype: str) -> Network:
    """The model ``config.type`` names, sized for the data; parameters still zero."""
    build = lookup(MODELS, config.type, "model.type", "model")
    return build(config, n_features, n_outputs, dtype)


def resolve_loss(model: str, loss: str | None, task: str, n_classes: int) -> tuple[str, int]:
    """The loss to train with (``training.loss``, or the model's own when None) and the number
    of outputs it needs; `ConfigError` names the field at fault for a combination that cannot
    train."""
    if task == "regression":
        if model not in ("linear", "mlp"):
            raise ConfigError(
                "model.type",
                f"{model} regression needs class labels, and this "
                "target is continuous: use linear or mlp",
            )
        if loss not in (None, "mse", "rss"):
            raise ConfigError(
                "training.loss",
                f"{loss} needs class labels; for a continuous target use mse or rss",
            )
        return loss or "mse", 1
    if model == "linear":
        raise ConfigError(
            "model.type",
            "linear regression needs a continuous target; for classes use logistic, softmax or mlp",
        )
    if loss == "bce" and n_classes != 2:
        raise ConfigError(
            "training.loss",
            f"bce is for two classes and this target has {n_classes}: use cross_entropy",
        )
    if model == "logistic":
        if n_classes != 2:
            raise ConfigError(
                "model.type",
                f"logistic regression is binary and this target has "
                f"{n_classes} classes: use softmax or mlp",
            )
        if loss not in (None, "bce"):
            raise ConfigError("training.loss", f"logistic regression trains with bce, not {loss}")
        return "bce", 1
    if loss == "bce" and model == "softmax":
        raise ConfigError(
            "training.loss",
            "softmax regression trains with cross_entropy "
            "(mse, rss); for bce use model.type logistic",
        )
    loss = loss or "cross_entropy"
    return loss, 1 if loss == "bce" else n_classes
