"""hpsearch: hyperparameter search as a shared service.

The public face for Python users. `hpsearch.trainer` is the interface a team's own training
code implements to be tuned by hpsearch (see the README, "Write your own trainer");
`hpsearch.optimize(study, objective)` tunes a function in the caller's process.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # optimize() needs the database and search layers: loaded when first used, not with the CLI.
    if name in ("optimize", "OptimizeResult", "StudyError"):
        from hpsearch import optimization

        return getattr(optimization, name)
    raise AttributeError(f"module 'hpsearch' has no attribute {name!r}")
