"""hpsearch: hyperparameter search as a shared service.

The public face for Python users: `hpsearch.Client` talks to a server (README, "Use from
Python"); `hpsearch.trainer` is the interface a team's own training code implements to be
tuned by hpsearch (README, "Write your own trainer").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.client import ApiError, Client

__all__ = ["ApiError", "Client"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import hpsearch` (e.g. by a trainer plugin in a worker) stays light.
    if name in ("Client", "ApiError"):
        from hpsearch import client

        return getattr(client, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
