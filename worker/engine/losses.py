"""Loss functions of logits and integer labels, averaged over the batch."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from worker.engine.registry import lookup


class Loss(ABC):
    """A loss L(logits, y) with its gradient dL/dlogits."""

    @abstractmethod
    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        """The mean loss over the batch."""

    @abstractmethod
    def backward(self, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
        """dL/dlogits for the mean loss, same shape as ``logits``."""

    def loss_and_grad(self, logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once; subclasses may share work between them."""
        return self.forward(logits, y), self.backward(logits, y)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax(z)_k = z_k − max(z) − log Σ_j exp(z_j − max(z)), row-wise (log-sum-exp)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy(Loss):
    """L = −(1/n) Σ_i log softmax(z_i)[y_i];  dL/dz_i = (softmax(z_i) − onehot(y_i)) / n."""

    def forward(self, logits: np.ndarray, y: np.ndarray) -> float:
        return self.loss_and_grad(logits, y)[0]

    def backward(self, logits: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.loss_and_grad(logits, y)[1]

    def loss_and_grad(self, logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        n = logits.shape[0]
        log_p = log_softmax(logits)
        rows = np.arange(n)
        loss = -float(log_p[rows, y].mean())
        grad = np.exp(log_p)
        grad[rows, y] -= 1.0
        return loss, grad / n


LOSSES: dict[str, type[Loss]] = {"cross_entropy": SoftmaxCrossEntropy}


def get_loss(name: str) -> Loss:
    """A new loss by its study-file name (``training.loss``)."""
    return lookup(LOSSES, name, "training.loss", "loss")()
