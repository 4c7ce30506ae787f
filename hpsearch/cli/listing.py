"""Listings on the command line: a table for people, or every field of every row as JSON or CSV
for other tools (`--format`). An empty list says so rather than drawing an empty table.

rich loads when a command prints, not with the CLI: `LazyConsole` and `escape` stand in for
its console and its markup escape until then, so that `--help` starts without it."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from typer._click import Context, HelpFormatter

Format = Literal["table", "json", "csv"]
FormatOption = Annotated[
    Format,
    typer.Option(help="table for people; json or csv: every field of each row, for other tools."),
]
# As many as a trial's metrics are compared by (`hpsearch train`); a table never wraps them.
DIGITS = 6


# A group's own flags, as false unless given. Typer (0.29) checks an unset flag's None with a
# pydantic TypeAdapter, which imports pydantic (about 0.1 s) for `hpsearch status --help`
# before any help is shown; a bool given by default passes as it is.
_FLAGS_UNSET = dict.fromkeys(("help", "install_completion", "show_completion"), False)


class _Group(TyperGroup):
    """Lists each command with its help's first sentence whole, wrapped to the terminal, as
    rich's panels did: click cuts it to one line, often mid-sentence."""

    def format_commands(self, ctx: Context, formatter: HelpFormatter) -> None:
        rows = [
            (name, command.get_short_help_str(limit=_WHOLE))
            for name in self.list_commands(ctx)
            if (command := self.get_command(ctx, name)) is not None and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


_WHOLE = 1_000  # longer than any first sentence


def command_group(help: str) -> typer.Typer:
    """A group of commands, shown with `--help` when called alone. Its help is click's plain
    text, not rich's panels: rendering those imported rich, markdown-it and their styles
    (about 0.05 s) before any help was printed."""
    return typer.Typer(
        cls=_Group,
        help=help,
        no_args_is_help=True,
        rich_markup_mode=None,
        context_settings={"default_map": _FLAGS_UNSET},
    )


class LazyConsole:
    """A rich `Console(**options)`, made on first use of any of its attributes."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def get(self) -> Console:
        """The console itself, for what takes one (a progress bar)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def escape(text: str) -> str:
    """`text` with rich's markup escaped, to print as it is (rich.markup.escape)."""
    from rich.markup import escape

    return escape(text)


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
    from rich.table import Table

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
    console: Console | LazyConsole,
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
