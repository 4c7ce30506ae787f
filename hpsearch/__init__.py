"""hpsearch: hyperparameter search as a shared service.

The public face for Python users: `hpsearch.Client` talks to a server (README, "Use from
Python"); `hpsearch.optimize(study, objective)` tunes a function in the caller's process;
`hpsearch.agent(study, trainer)` runs a server's trials on this machine;
`hpsearch.trainer` is the interface a team's own training code implements to be tuned by
hpsearch (README, "Write your own trainer").
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.agent import agent
    from hpsearch.client import ApiError, Client
    from hpsearch.optimization import OptimizeResult, StudyError, optimize

__all__ = ["ApiError", "Client", "OptimizeResult", "StudyError", "agent", "optimize"]


class _Package(types.ModuleType):
    """This package's module: `hpsearch.agent` stays the function once its module loads."""

    def __setattr__(self, name: str, value: Any) -> None:
        # The function shares its name with its module, which the import system binds as the
        # package's attribute once something first imports it (the CLI's `hpsearch agent`
        # command, a test): the function, as `from hpsearch import agent` promises, stays.
        if name == "agent" and isinstance(value, types.ModuleType):
            value = value.agent
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import hpsearch` (e.g. by a trainer plugin in a worker, or the CLI)
    # stays light; optimize() needs the database and search layers, agent() httpx.
    if name == "agent":
        from hpsearch.agent import agent

        return agent
    if name in ("Client", "ApiError"):
        from hpsearch import client

        return getattr(client, name)
    if name in ("optimize", "OptimizeResult", "StudyError"):
        from hpsearch import optimization

        return getattr(optimization, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
