"""Checkpoints: resuming after epoch k gives the run that never stopped, bit for bit."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

from hpsearch.worker.engine import CheckpointError, TrainConfig, TrainResult, load_splits, train
from hpsearch.worker.engine import checkpoint as checkpoints
from hpsearch.worker.engine.config import Optimizer
from hpsearch.worker.engine.training import Trainer, evaluate_weights

OPTIMIZERS: tuple[str, ...] = Optimizer.__args__
TIMING_KEYS = {"epoch_seconds", "train_seconds"}
EPOCHS, AT = 6, 3

# An MLP with batch norm and dropout, shuffled mini-batches: every piece of state in play.
FULL_MODEL = {
    "type": "mlp",
    "hidden": [8],
    "batch_norm": True,
    "dropout": 0.2,
    "init": "he",
}


def config(model: dict | None = None, **training: Any) -> TrainConfig:
    training = {"epochs": EPOCHS, "batch_size": 16, "dtype": "float64", **training}
    return TrainConfig.parse(
        {"dataset": {"name": "iris"}, "model": model or FULL_MODEL, "training": training}
    )


def learning_rate(optimizer: str) -> float | None:
    return None if optimizer == "adadelta" else (0.5 if optimizer == "adagrad" else 0.05)


def without_timings(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}


def checkpoint_at(cfg: TrainConfig, epoch: int) -> bytes:
    """Run ``cfg`` whole, keeping the checkpoint offered after ``epoch``."""
    kept: dict[int, bytes] = {}

    def keep(at: int, save: Any) -> None:
        if at == epoch:
            kept[at] = save()

    train(cfg, on_checkpoint=keep)
    return kept[epoch]


def assert_same_run(resumed: TrainResult, whole: TrainResult) -> None:
    assert (resumed.status, resumed.reason, resumed.epochs) == (
        whole.status,
        whole.reason,
        whole.epochs,
    )
    assert resumed.steps == whole.steps
    assert [without_timings(m) for m in resumed.history] == [
        without_timings(m) for m in whole.history
    ]
    assert without_timings(resumed.metrics) == without_timings(whole.metrics)
    for name, value in whole.params.items():
        assert np.array_equal(resumed.params[name], value), name
    for name, value in whole.buffers.items():
        assert np.array_equal(resumed.buffers[name], value), name


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_resuming_after_an_epoch_is_the_run_that_never_stopped(optimizer: str) -> None:
    cfg = config(optimizer=optimizer, learning_rate=learning_rate(optimizer), weight_decay=1e-3)
    whole = train(cfg)
    assert whole.epochs == EPOCHS  # the comparison covers epochs after the checkpoint
    reported: list[int] = []
    resumed = train(
        cfg,
        report=lambda epoch, metrics: reported.append(epoch),
        resume=checkpoint_at(cfg, AT),
    )
    assert reported == list(range(AT + 1, EPOCHS + 1))  # the epochs before were reported then
    assert_same_run(resumed, whole)


@pytest.mark.parametrize(
    "schedule",
    [
        {"type": "step", "every": 2, "factor": 0.5},
        {"type": "exponential", "rate": 0.8},
        {"type": "cosine", "min_lr": 0.001},
    ],
)
def test_resuming_keeps_the_schedule(schedule: dict) -> None:
    cfg = config(optimizer="momentum", learning_rate=0.1, schedule=schedule)
    whole = train(cfg)
    resumed = train(cfg, resume=checkpoint_at(cfg, AT))
    assert_same_run(resumed, whole)
    assert len({m["learning_rate"] for m in resumed.history}) > 1


def test_resuming_keeps_patience_counting() -> None:
    # A learning rate so small val_accuracy stalls: patience runs out after the checkpoint,
    # at the epoch it would have without one, only if its count survived.
    stopping = {"patience": 4, "monitor": "val_accuracy", "min_delta": 0.5}
    cfg = config(optimizer="sgd", learning_rate=1e-4, epochs=12, stopping=stopping)
    whole = train(cfg)
    assert whole.reason is not None and "has not improved" in whole.reason
    assert AT < whole.epochs < 12
    assert_same_run(train(cfg, resume=checkpoint_at(cfg, AT)), whole)


def test_resuming_keeps_the_step_limit() -> None:
    cfg = config(optimizer="adam", learning_rate=0.01, stopping={"max_iterations": 30})
    whole = train(cfg)  # iris trains on 90 rows: 6 steps an epoch, so the limit ends epoch 5
    assert whole.steps == 30 and whole.epochs == 5
    assert_same_run(train(cfg, resume=checkpoint_at(cfg, AT)), whole)


def test_resuming_keeps_the_divergence_limit() -> None:
    # nag at η = 3 climbs past 10⁶ × the loss before training at epoch 6: a resumed run must
    # judge against that loss, measured before its first epoch, to stop at the same epoch.
    cfg = config({"type": "mlp", "hidden": [8], "init": "he"}, optimizer="nag", learning_rate=3.0)
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": 12})})
    whole = train(cfg)
    assert whole.status == "diverged" and whole.epochs == 6 and "train_loss" in whole.reason
    assert_same_run(train(cfg, resume=checkpoint_at(cfg, AT)), whole)


def test_a_checkpoint_holds_the_whole_optimizer_state() -> None:
    cfg = config(optimizer="adam", learning_rate=0.01)
    blob = checkpoint_at(cfg, AT)
    meta, arrays = checkpoints.read(blob)
    trainer = Trainer(cfg, load_splits(cfg.dataset))
    assert {"optimizer/m", "optimizer/v", "weights"} <= set(arrays)
    assert {name for name in arrays if name.startswith("buffer/")} == {
        f"buffer/{name}" for name in trainer.net.buffers()
    }
    assert meta["epoch"] == AT and meta["optimizer"]["t"] == meta["steps"] == AT * 6
    assert len(meta["history"]) == AT


def test_a_checkpoint_is_plain_npz_without_pickles() -> None:
    blob = checkpoint_at(config(optimizer="nag", learning_rate=0.05), AT)
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def _rewrite_meta(blob: bytes, **changes: Any) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, **changes}))
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def test_a_checkpoint_from_another_engine_version_is_refused() -> None:
    cfg = config(optimizer="sgd", learning_rate=0.1)
    blob = _rewrite_meta(checkpoint_at(cfg, AT), engine_version="0.0.9")
    with pytest.raises(CheckpointError, match="engine '0.0.9'.*this is engine"):
        train(cfg, resume=blob)


def test_a_checkpoint_of_another_model_or_optimizer_is_refused() -> None:
    blob = checkpoint_at(config(optimizer="sgd", learning_rate=0.1), AT)
    for other in (
        config(optimizer="momentum", learning_rate=0.1),
        config({**FULL_MODEL, "dropout": 0.3}, optimizer="sgd", learning_rate=0.1),
    ):
        with pytest.raises(CheckpointError, match="another dataset, model, optimizer"):
            train(other, resume=blob)


def test_a_checkpoint_resumes_with_other_hyperparameters() -> None:
    # What population-based training does: the state goes on under a new learning rate.
    blob = checkpoint_at(config(optimizer="adam", learning_rate=0.01), AT)
    changed = config(optimizer="adam", learning_rate=0.02)
    resumed = train(changed, resume=blob)
    assert [m["learning_rate"] for m in resumed.history] == [0.01] * AT + [0.02] * (EPOCHS - AT)
    assert resumed.steps == EPOCHS * 6


def test_more_epochs_may_resume_a_shorter_run() -> None:
    short = config(optimizer="sgd", learning_rate=0.1)
    longer = config(optimizer="sgd", learning_rate=0.1, epochs=EPOCHS + 2)
    assert_same_run(train(longer, resume=checkpoint_at(short, AT)), train(longer))


def test_bytes_that_are_not_a_checkpoint_are_refused() -> None:
    with pytest.raises(CheckpointError, match="not an hpsearch checkpoint"):
        train(config(optimizer="sgd", learning_rate=0.1), resume=b"PK\x03\x04 not a zip")


@pytest.mark.parametrize("optimizer", ["sgd", "nag", "adam"])
def test_saved_weights_reloaded_give_the_reported_metrics_exactly(optimizer: str) -> None:
    cfg = config(optimizer=optimizer, learning_rate=learning_rate(optimizer))
    result = train(cfg)
    blob = checkpoints.save_weights(cfg, result.params, result.buffers)
    measured = evaluate_weights(blob)
    for name in ("val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        assert measured[name] == result.metrics[name], name


def test_a_weights_file_names_its_arrays_and_holds_its_config() -> None:
    cfg = config(optimizer="adam", learning_rate=0.01)
    result = train(cfg)
    loaded, arrays = checkpoints.read_weights(
        checkpoints.save_weights(cfg, result.params, result.buffers)
    )
    assert loaded == cfg
    assert set(arrays) == {f"param/{n}" for n in result.params} | {
        f"buffer/{n}" for n in result.buffers
    }
    for name, value in result.params.items():
        assert np.array_equal(arrays[f"param/{name}"], value)


def test_weights_for_another_model_are_refused() -> None:
    small = config(optimizer="sgd", learning_rate=0.1)
    result = train(small)
    arrays = checkpoints.read_weights(
        checkpoints.save_weights(small, result.params, result.buffers)
    )[1]
    wider = config({**FULL_MODEL, "hidden": [16]}, optimizer="sgd", learning_rate=0.1)
    trainer = Trainer(wider, load_splits(wider.dataset))
    with pytest.raises(
        CheckpointError, match=r"param/dense0.W is float64\[4, 8\] in the file but float64\[4, 16\]"
    ):
        checkpoints.load_weights(trainer, arrays)


def test_training_from_saved_weights_starts_where_they_left_off() -> None:
    model = {"type": "mlp", "hidden": [8], "init": "he"}  # no batch norm: nothing else moves
    cfg = config(model, optimizer="adam", learning_rate=0.01)
    result = train(cfg)
    blob = checkpoints.save_weights(cfg, result.params, result.buffers)
    # One epoch at a learning rate too small to move anything: the trained model's metrics,
    # where training from the initializer's draw is far from them.
    still = config(model, optimizer="sgd", learning_rate=1e-12, epochs=1)
    resumed = train(still, initial_weights=blob)
    fresh = train(still)
    assert resumed.metrics["val_loss"] == pytest.approx(result.metrics["val_loss"], rel=1e-6)
    assert abs(fresh.metrics["val_loss"] - result.metrics["val_loss"]) > 0.1
