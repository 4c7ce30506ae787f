"""Listings on the command line: a table for people, or every field of every row as JSON or CSV
for other tools (`--format`). An empty list says so rather than drawing an empty table."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

Format = Literal["table", "json", "csv"]
FormatOption = Annotated[
    Format,
    typer.Option(help="table for people; json or csv: every field of each row, for other tools."),
]
# As many as a trial's metrics are compared by (`hpsearch train`); a table never wraps them.
DIGITS = 6


def number(value: Any) -> str:
    """A value as tables and summaries show it: a float to `DIGITS` significant digits."""
    return f"{value:.{DIGITS}g}" if isinstance(value, float) else json.dumps(value)


def write(text: str) -> None:
    """Text for other tools, as it is: not through rich, whose wrapping and markup change it."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def table(
    *columns: str,
    rows: Sequence[Sequence[str]],
    numeric: Sequence[str] = (),
    whole: Sequence[str] = (),
    title: str | None = None,
) -> Table:
    """A table whose `numeric` columns are right-aligned and never wrapped, nor the lines of its
    `whole` ones (one `name=value` a line): a narrow terminal folds the other text columns,
    never a number mid-digit."""
    drawn = Table(title=title)
    for column in columns:
        if column in numeric:
            drawn.add_column(column, justify="right", no_wrap=True)
        elif column in whole:
            drawn.add_column(column, no_wrap=True)
        else:
            drawn.add_column(column, overflow="fold")
    for row in rows:
        drawn.add_row(*row)
    return drawn


def show(
    items: Sequence[Mapping[str, Any]],
    format: Format,
    *,
    empty: str,
    draw: Callable[[Sequence[Mapping[str, Any]]], Table],
    console: Console,
) -> None:
    """`items` as `format`: JSON (the rows as they are), CSV (nested fields flattened to dotted
    columns) or the table `draw` makes of them; `empty` is said instead of an empty table."""
    if format == "json":
        write(json.dumps(list(items), indent=2))
    elif format == "csv":
        write(to_csv(items))
    elif not items:
        console.print(empty)
    else:
        console.print(draw(items))


def to_csv(items: Sequence[Mapping[str, Any]]) -> str:
    """One line per item under a header of every field any item has; nested mappings become
    dotted columns, lists JSON text, None an empty cell."""
    rows = [_flat(item) for item in items]
    header = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, header, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _flat(item: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            flat[prefix + key] = json.dumps(value)
        else:
            flat[prefix + key] = "" if value is None else value
    return flat
