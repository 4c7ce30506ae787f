"""The built-in NumPy engine as the trainer `numpy`, registered like any other trainer."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from functools import partial

from hpsearch.db.settings import get_settings
from hpsearch.search.definition import EPOCH_METRICS, OBJECTIVE_METRICS
from hpsearch.trainer import Context, Dataset, Diverged, Trainer
from hpsearch.worker.engine import (
    ENGINE_VERSION,
    ConfigError,
    Splits,
    TrainConfig,
    Upload,
    load_splits,
    train,
)
from hpsearch.worker.engine.checkpoint import save_weights
from hpsearch.worker.engine.config import DatasetConfig


class NumpyTrainer(Trainer):
    """Linear, logistic, softmax and MLP models trained by hpsearch's own NumPy engine."""

    name = "numpy"
    version = ENGINE_VERSION
    Config = TrainConfig
    step_metrics = EPOCH_METRICS
    final_metrics = OBJECTIVE_METRICS
    step_name = "epoch"
    resumable = True

    def train(self, config: TrainConfig, context: Context) -> Mapping[str, float]:  # type: ignore[override]
        dataset = None
        if (ref := config.dataset.upload_ref()) is not None:
            try:
                dataset = context.dataset(ref)
            except LookupError as exc:
                raise ConfigError(_ref_field(config.dataset), str(exc)) from None
        splits = _splits(
            json.dumps(config.dataset.model_dump(mode="json"), sort_keys=True), dataset
        )
        result = train(
            config, splits, context.report, resume=context.resume, on_checkpoint=context.checkpoint
        )
        if result.status == "diverged":
            raise Diverged(result.reason or "diverged", result.metrics)
        context.keep_weights(partial(save_weights, config, result.params, result.buffers))
        return result.metrics


def _ref_field(dataset: DatasetConfig) -> str:
    if dataset.upload is not None:
        return "dataset.upload"
    return "dataset.upload_id" if dataset.upload_id is not None else "dataset.name"


# Splits this process made, least recently used first: a worker runs many trials on the same
# data, so it loads and preprocesses it once. Keyed by the dataset's id and its bytes' hash, not
# by the bytes themselves, so that the cache holds no upload (up to 50 MB each) alive.
_SPLITS: OrderedDict[tuple[str, int | None, int], Splits] = OrderedDict()
MAX_CACHED_SPLITS = 8


def _splits(dataset_json: str, dataset: Dataset | None) -> Splits:
    # An upload's rows never change; `hash` of bytes is computed once per bytes object.
    key = (dataset_json, *((dataset.id, hash(dataset.content)) if dataset else (None, 0)))
    splits = _SPLITS.pop(key, None)
    if splits is None:
        config = DatasetConfig.model_validate_json(dataset_json)
        limit = get_settings().max_dataset_cells
        upload = Upload(dataset.content, dataset.format, limit) if dataset else None  # type: ignore[arg-type]
        splits = load_splits(config, upload)
    _SPLITS[key] = splits  # most recently used last
    while len(_SPLITS) > MAX_CACHED_SPLITS:
        _SPLITS.popitem(last=False)
    return splits
