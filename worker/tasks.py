"""The Celery app and its one task. `hpsearch worker` runs this app."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from db.settings import get_settings
from worker.runner import run_trial
from worker.sweeper import Sweeper

# The broker must not hand a running trial to a second worker before the first is done with it.
VISIBILITY_TIMEOUT_S = 6 * 3600

app = Celery("hpsearch", broker=get_settings().broker_url)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    # A worker sends the trials queued after the one it ran. Celery's default gives up on an
    # unreachable broker within a second, which left those trials queued, unsent, until the
    # sweeper sent them again (HPSEARCH_REQUEUE_AFTER_S later): wait out a broker restart.
    task_publish_retry_policy={
        "max_retries": 40,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 2,
    },
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_S},
)


@app.task(name="hpsearch.run_trial")
def run_trial_task(trial_id: int) -> None:
    """Run one trial, then dispatch the trials the coordinator queued after it."""
    CeleryDispatcher().dispatch(run_trial(trial_id))


class CeleryDispatcher:
    """The distributed dispatcher: one Celery task per trial, on the configured broker."""

    def dispatch(self, trial_ids: Sequence[int]) -> None:
        for trial_id in trial_ids:
            run_trial_task.delay(trial_id)

    def shutdown(self) -> None:
        """Nothing to release: the broker's connections close with the process."""


_sweepers: list[Sweeper] = []


@worker_ready.connect
def _start_sweeper(**_: object) -> None:
    # In the worker's main process, not in its pool's children: one sweeper per worker.
    _sweepers.append(Sweeper(CeleryDispatcher().dispatch).start())


@worker_shutdown.connect
def _stop_sweeper(**_: object) -> None:
    for sweeper in _sweepers:
        sweeper.stop()
