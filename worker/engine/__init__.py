"""The NumPy training engine: train one model from a config, reporting every epoch.

Imports nothing of the rest of hpsearch::

    from hpsearch.worker.engine import TrainConfig, load_splits, train

    config = TrainConfig.parse({"dataset": {"name": "iris"}, "model": {"type": "softmax"}})
    result = train(config, load_splits(config.dataset), lambda epoch, metrics: None)
    result.status, result.metrics["val_accuracy"]
"""

from hpsearch.worker.engine.checkpoint import CheckpointError
from hpsearch.worker.engine.config import ConfigError, TrainConfig
from hpsearch.worker.engine.data import (
    BUILTIN_DATASETS,
    Splits,
    Upload,
    describe_upload,
    load_splits,
)
from hpsearch.worker.engine.training import TrainResult, train
from hpsearch.worker.engine.version import ENGINE_VERSION

__all__ = [
    "BUILTIN_DATASETS",
    "CheckpointError",
    "ENGINE_VERSION",
    "ConfigError",
    "Splits",
    "TrainConfig",
    "TrainResult",
    "Upload",
    "describe_upload",
    "load_splits",
    "train",
]
