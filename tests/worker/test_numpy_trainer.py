"""The built-in trainer keeps preprocessed splits per process, without holding uploads alive."""

from __future__ import annotations

import gc
import weakref

from hpsearch.trainer import Dataset
from hpsearch.worker import numpy_trainer
from tests.api.conftest import table_csv

CONFIG = '{"name": "7", "target": "label"}'


def test_splits_are_made_once_per_upload_and_hold_no_upload_alive() -> None:
    upload = Dataset(7, "csv", table_csv(40))
    first = numpy_trainer._splits(CONFIG, upload)
    alive = weakref.ref(upload)
    del upload
    gc.collect()
    assert alive() is None, "the cache keeps the uploaded bytes"
    # The same upload read again (a new object, equal bytes) finds the same splits.
    assert numpy_trainer._splits(CONFIG, Dataset(7, "csv", table_csv(40))) is first
    assert numpy_trainer._splits(CONFIG, Dataset(7, "csv", table_csv(41))) is not first
