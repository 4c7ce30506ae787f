"""The service's settings, read from ``HPSEARCH_*`` environment variables.

They live in `db/`, the bottom of the import graph, because every layer reads them and `db/`
imports nothing of the project.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the data lives and how trials are dispatched."""

    model_config = SettingsConfigDict(env_prefix="HPSEARCH_", extra="ignore")

    database_url: str = Field(
        "sqlite:///hpsearch.db",
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... to share.",
    )
    broker_url: str | None = Field(
        None, description="Celery broker (redis://...). Unset: trials run in a local process pool."
    )
    migrate_on_start: bool = Field(
        True,
        description="Upgrade the schema when `hpsearch serve` or `hpsearch worker` starts; a"
        " deployment that runs `hpsearch db upgrade` as its own step first (docker-compose.yml's"
        " `migrate` service) sets false.",
    )
    local_workers: int = Field(
        0, ge=0, description="`hpsearch serve`'s local pool size (no broker); 0 means 2."
    )
    blas_threads: int = Field(
        1,
        ge=0,
        description="BLAS threads per trial process (OMP/OPENBLAS/MKL_NUM_THREADS); 0 leaves"
        " those variables as the environment sets them.",
    )
    heartbeat_s: float = Field(5.0, gt=0, description="How often a running trial heartbeats.")
    lost_after_s: float = Field(
        30.0, gt=0, description="A running trial silent this long is `failed: lost`."
    )
    requeue_after_s: float = Field(
        300.0,
        gt=0,
        description="A trial queued this long without a worker taking it is dispatched again"
        " (its message may have been lost with the broker).",
    )
    sweep_every_s: float = Field(5.0, gt=0, description="How often workers look for the above.")
    trainers: str | None = Field(
        None,
        description="The trainers a worker runs and offers, comma-separated; unset: every"
        " trainer installed (`hpsearch worker --trainers` sets it).",
    )
    max_trials: int = Field(10_000, ge=1, description="Largest budget a study may ask for.")
    max_parallelism: int = Field(64, ge=1, description="Largest parallelism a study may ask for.")
    max_epochs: int = Field(10_000, ge=1, description="Most epochs a trial may train.")
    max_hidden_layers: int = Field(16, ge=1, description="Most hidden layers a model may have.")
    max_hidden_units: int = Field(4096, ge=1, description="Most units a hidden layer may have.")
    max_upload_bytes: int = Field(50 * 2**20, ge=1, description="Largest dataset upload (413).")
    max_checkpoint_bytes: int = Field(
        64 * 2**20, ge=0, description="Largest training state a trial keeps (0: none kept)."
    )
    max_body_bytes: int = Field(2**20, ge=1, description="Largest other request body (413).")
    max_dataset_cells: int = Field(
        2**24,
        ge=1,
        description="Largest table an uploaded dataset may decode to, in rows × columns (422);"
        " an NPZ's arrays may also declare at most 8 bytes per such cell in total.",
    )
    rate_limit_per_s: float = Field(
        50.0, gt=0, description="Requests per second a token may sustain (429 beyond)."
    )
    rate_limit_burst: int = Field(200, ge=1, description="Requests a token may make at once.")


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
