"""hpsearch: hyperparameter search as a shared service.

The public face for Python users: `hpsearch.Client` talks to a server (README, "Use from
Python"); `hpsearch.optimize(study, objective)` tunes a function in the caller's process;
`hpsearch.agent(study, trainer)` runs a server's trials on this machine;
`hpsearch.trainer` is the interface a team's own training code implements to be tuned by
hpsearch (README, "Write your own trainer").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Imported here, not on first use like the others: the function shares its name with its module,
# which would otherwise replace it as the package's attribute once something imports the module.
from hpsearch.agent import agent

if TYPE_CHECKING:
    from hpsearch.client import ApiError, Client
    from hpsearch.optimization import OptimizeResult, StudyError, optimize

__all__ = ["ApiError", "Client", "OptimizeResult", "StudyError", "agent", "optimize"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import hpsearch` (e.g. by a trainer plugin in a worker, or the CLI)
    # stays light; optimize() needs the database and search layers.
    if name in ("Client", "ApiError"):
        from hpsearch import client

        return getattr(client, name)
    if name in ("optimize", "OptimizeResult", "StudyError"):
        from hpsearch import optimization

        return getattr(optimization, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
