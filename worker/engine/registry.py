"""Name lookup shared by every registry: a study file's name to the engine's class."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from hpsearch.worker.engine.config import ConfigError

T = TypeVar("T")


def lookup(registry: Mapping[str, T], name: str, field: str, kind: str) -> T:
    """Return ``registry[name]``, or raise `ConfigError` on ``field`` listing the known names."""
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise ConfigError(field, f"unknown {kind} {name!r}; built-in: {known}") from None
