"""A trial's whole training state at an epoch's end, as NPZ bytes, and back.

What a run carries from one epoch to the next, and so what a checkpoint holds: the parameters
(NAG's weights, which the model's own vector equals at an epoch's end), the optimizer's state
(velocities, accumulators, Adam's moments and its step count), batch norm's running statistics,
the shuffling and dropout generators, each stopping rule's memory, the loss before training
(divergence is judged against it, and a resumed run cannot measure it again), the epochs' metrics
and the step count. The schedule is a function of the epoch alone, so the epoch restores it.
Resuming from the checkpoint of epoch k then gives, bit for bit, the run that never stopped.

Arrays are stored as arrays and everything else as one JSON document, so loading never
unpickles (``allow_pickle=False``). A checkpoint names the engine version and a digest of the
config's data, model and optimizer; another version, or a state that does not fit the model
and optimizer, is refused with a `CheckpointError` saying which.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.worker.engine.config import TrainConfig
from hpsearch.worker.engine.stopping import Divergence, Metrics
from hpsearch.worker.engine.version import ENGINE_VERSION

if TYPE_CHECKING:
    from hpsearch.worker.engine.training import Trainer

FORMAT = 1
_META = "meta"
WEIGHTS_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed here, and why."""


@dataclass(frozen=True)
class Resumed:
    """Where a restored run stands: the epochs done, their metrics, the divergence check."""

    epoch: int
    history: list[Metrics]
    divergence: Divergence


def config_digest(config: TrainConfig) -> str:
    """A digest of what the state's arrays depend on: the data, the model, the optimizer, the
    loss and the dtype. The other settings may change between a checkpoint and its resumption,
    as population-based training changes a member's learning rate; a lost trial's retry runs
    its exact config anyway. A change of ``training.epochs`` lets a run be extended."""
    training = config.training
    document = {
        "dataset": config.dataset.model_dump(mode="json"),
        "model": config.model.model_dump(mode="json"),
        "training": [training.optimizer, training.loss, training.dtype],
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save(trainer: Trainer, epoch: int, history: list[Metrics], divergence: Divergence) -> bytes:
    """The run's state after ``epoch`` as NPZ bytes."""
    arrays: dict[str, np.ndarray] = {"weights": trainer.weights}
    scalars: dict[str, Any] = {}
    for name, value in trainer.state.items():
        if isinstance(value, np.ndarray):
            arrays[f"optimizer/{name}"] = value
        else:
            scalars[name] = value
    for name, value in trainer.net.buffers().items():
        arrays[f"buffer/{name}"] = value
    meta = {
        "format": FORMAT,
        "engine_version": ENGINE_VERSION,
        "config": config_digest(trainer.config),
        "epoch": epoch,
        "steps": trainer.steps,
        "history": history,
        "optimizer": scalars,
        "rules": [rule.state() for rule in trainer.rules],
        "initial_loss": divergence.initial_loss,
        "shuffle_rng": trainer.shuffle_rng.bit_generator.state,
        "dropout_rng": trainer.net.dropout_rng.bit_generator.state,
    }
    arrays[_META] = np.array(json.dumps(meta))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def read(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A checkpoint's metadata and arrays, after checking it is one this engine can resume."""
    meta, arrays = _open(blob, "hpsearch checkpoint")
    if meta.get("format") != FORMAT or meta.get("engine_version") != ENGINE_VERSION:
        raise CheckpointError(
            f"checkpoint written by engine {meta.get('engine_version')!r} (format "
            f"{meta.get('format')!r}); this is engine {ENGINE_VERSION!r} (format {FORMAT})"
        )
    return meta, arrays


def _open(blob: bytes, what: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(str(arrays.pop(_META)))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"not an {what} ({exc})") from None
    return meta, arrays


def restore(trainer: Trainer, blob: bytes) -> Resumed:
    """Put a checkpoint's state into a freshly built ``trainer`` of the same config."""
    meta, arrays = read(blob)
    if meta["config"] != config_digest(trainer.config):
        raise CheckpointError(
            "checkpoint made for another dataset, model, optimizer, loss or dtype"
        )
    _copy(trainer.weights, arrays["weights"], "weights")
    if trainer.weights is not trainer.net.flat:
        np.copyto(trainer.net.flat, trainer.weights)
    for name, value in trainer.state.items():
        if isinstance(value, np.ndarray):
            _copy(value, arrays[f"optimizer/{name}"], f"optimizer/{name}")
    trainer.state.update(meta["optimizer"])
    for name, value in trainer.net.buffers().items():
        _copy(value, arrays[f"buffer/{name}"], f"buffer/{name}")
    for rule, state in zip(trainer.rules, meta["rules"], strict=True):
        rule.load_state(state)
    trainer.shuffle_rng.bit_generator.state = meta["shuffle_rng"]
    trainer.net.dropout_rng.bit_generator.state = meta["dropout_rng"]
    trainer.steps = meta["steps"]
    return Resumed(meta["epoch"], meta["history"], Divergence(meta["initial_loss"]))


def save_weights(
    config: TrainConfig, params: dict[str, np.ndarray], buffers: dict[str, np.ndarray]
) -> bytes:
    """A trained model as NPZ bytes: ``param/<name>`` and ``buffer/<name>`` arrays (named as
    in `Network.params`, e.g. ``dense0.W``), and ``meta``, a JSON string naming the engine
    version and holding the whole config, so the file is enough to rebuild the model."""
    arrays = {f"param/{name}": value for name, value in params.items()}
    arrays |= {f"buffer/{name}": value for name, value in buffers.items()}
    meta = {
        "weights_format": WEIGHTS_FORMAT,
        "engine_version": ENGINE_VERSION,
        "config": config.model_dump(mode="json"),
    }
    arrays[_META] = np.array(json.dumps(meta))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def read_weights(blob: bytes) -> tuple[TrainConfig, dict[str, np.ndarray]]:
    """A weights file's config and arrays, after checking this engine wrote its format."""
    meta, arrays = _open(blob, "hpsearch weights")
    if meta.get("weights_format") != WEIGHTS_FORMAT or meta.get("engine_version") != ENGINE_VERSION:
        raise CheckpointError(
            f"weights written by engine {meta.get('engine_version')!r}; this is engine "
            f"{ENGINE_VERSION!r}"
        )
    return TrainConfig.model_validate(meta["config"]), arrays


def load_weights(trainer: Trainer, arrays: dict[str, np.ndarray]) -> None:
    """Put a weights file's arrays (`read_weights`) into ``trainer``'s model."""
    for prefix, named in (("param", trainer.net.params), ("buffer", trainer.net.buffers())):
        for name, value in named.items():
            if f"{prefix}/{name}" not in arrays:
                raise CheckpointError(f"the weights have no {prefix}/{name}")
            _copy(value, arrays[f"{prefix}/{name}"], f"{prefix}/{name}")
    if trainer.weights is not trainer.net.flat:
        np.copyto(trainer.weights, trainer.net.flat)


def _copy(into: np.ndarray, value: np.ndarray, name: str) -> None:
    if into.shape != value.shape or into.dtype != value.dtype:
        raise CheckpointError(
            f"{name} is {value.dtype}{list(value.shape)} in the file but "
            f"{into.dtype}{list(into.shape)} in the model"
        )
    np.copyto(into, value)
