"""The built-in NumPy engine as the trainer `numpy`, registered like any other trainer."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache

from db.datasets import upload_id
from db.settings import get_settings
from hpsearch.trainer import Context, Dataset, Diverged, Trainer
from search.definition import EPOCH_METRICS, OBJECTIVE_METRICS
from worker.engine import (
    ENGINE_VERSION,
    ConfigError,
    Splits,
    TrainConfig,
    Upload,
    load_splits,
    train,
)
from worker.engine.config import DatasetConfig


class NumpyTrainer(Trainer):
    """Linear, logistic, softmax and MLP models trained by hpsearch's own NumPy engine."""

    name = "numpy"
    version = ENGINE_VERSION
    Config = TrainConfig
    step_metrics = EPOCH_METRICS
    final_metrics = OBJECTIVE_METRICS
    step_name = "epoch"

    def train(self, config: TrainConfig, context: Context) -> Mapping[str, float]:  # type: ignore[override]
        dataset = None
        if upload_id(config.dataset.name) is not None:
            try:
                dataset = context.dataset(config.dataset.name)
            except LookupError as exc:
                raise ConfigError("dataset.name", str(exc)) from None
        splits = _splits(
            json.dumps(config.dataset.model_dump(mode="json"), sort_keys=True), dataset
        )
        result = train(config, splits, context.report)
        if result.status == "diverged":
            raise Diverged(result.reason or "diverged", result.metrics)
        return result.metrics


@lru_cache(maxsize=8)
def _splits(dataset_json: str, dataset: Dataset | None) -> Splits:
    # A worker runs many trials on the same data: load and preprocess it once per process.
    # An upload's rows never change; the key holds its bytes, hashed once per bytes object.
    config = DatasetConfig.model_validate_json(dataset_json)
    upload = (
        Upload(dataset.content, dataset.format, get_settings().max_dataset_cells)
        if dataset
        else None
    )
    return load_splits(config, upload)
