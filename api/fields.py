"""A pydantic error as the field a user wrote and a sentence: for the API's 422 answers and the
command line's messages alike. Imports no FastAPI, so that the CLI reads a study file without it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_LEADING_FIELD = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


def field_path(loc: tuple[int | str, ...], document: Any = None) -> str:
    """A pydantic error location as the dotted path a user wrote (``budget.trials``).

    Discriminated unions add the chosen tag to the location (``strategy.random.seed``); a part
    is such a tag when the user's document has no key of that name there and its ``type`` is it.
    """
    parts: list[str] = []
    node = document
    for part in loc:
        if part in ("body", "query", "path") and not parts:
            continue
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue
        if isinstance(node, dict) and isinstance(part, int):
            continue  # one item given where a list is allowed: the item is the whole field
        parts.append(str(part))
        node = _child(node, part)
    return ".".join(parts)


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def describe_error(error: Mapping[str, Any], document: Any = None) -> tuple[str | None, str]:
    """(field, message) of one pydantic error, the message starting with the field.

    Checks across fields (model validators) have no location; their messages start with the
    dotted field they are about ("pruner: needs ..."), which is taken as the field.
    """
    message = error["msg"].removeprefix("Value error, ")
    field = field_path(tuple(error["loc"]), document)
    if field:
        return field, f"{field}: {message}"
    leading = _LEADING_FIELD.match(message)
    return (leading.group(1) if leading else None), message
