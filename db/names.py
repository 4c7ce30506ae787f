"""What the names users give things may hold: one rule for every layer that takes one.

A name (of a study, dataset, token, team, user, or a form field naming a column) is shown in
terminals, logs and the dashboard, so it may hold no control character (C0, DEL, C1: ESC
starts the ANSI sequences that repaint a terminal), no invisible format character (Unicode
category Cf: bidi overrides, zero-width joiners, tag characters) and no line or paragraph
separator. Preset names, uploaded datasets' names and tags are identifiers, used in paths and
refs: ASCII letters, digits, ``_``, ``.`` and ``-``, never starting with ``.`` or ``-`` (so
never ``.`` or ``..``).

The patterns are written for every regex dialect that reads them (ECMA in OpenAPI tools,
Python's ``re`` in schemathesis, Rust's in pydantic), so what OpenAPI publishes is what is
enforced. `NAME_PATTERN` lists the refused characters of the Basic Multilingual Plane; the
validator (`printable`) also refuses the few beyond it, which ECMA patterns cannot name.

This lives in `db/`, the bottom of the import graph, beside the columns the names go to.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

# Cs: a lone surrogate cannot be stored as UTF-8 (ECMA patterns cannot name it either).
REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")
# Unicode 14's characters of REFUSED_CATEGORIES below U+10000 (tests check it against the
# running Python's unicodedata).
_REFUSED_BMP = (
    r"\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    r"\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
)
NAME_PATTERN = rf"^[^{_REFUSED_BMP}]*$"
IDENTIFIER = r"[A-Za-z0-9_][A-Za-z0-9_.-]"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$"
PRESET_NAME_PATTERN = rf"^{IDENTIFIER}{{0,99}}$"


def printable(value: str) -> str:
    """`value` if it holds no control, format or separator character; ValueError otherwise."""
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            name = unicodedata.name(char, "a control character")
            raise ValueError(
                f"holds U+{ord(char):04X} ({name}); names may not hold control, format or"
                " line-separator characters"
            )
    return value


def check_name(value: str, max_length: int, min_length: int = 1) -> str:
    """`value` if it is a printable name of `min_length` to `max_length` characters, for
    callers outside pydantic (the admin CLI, an upload's file name); ValueError otherwise."""
    if not min_length <= len(value) <= max_length:
        raise ValueError(f"must be {min_length} to {max_length} characters long")
    return printable(value)


Printable = Annotated[
    str, AfterValidator(printable), Field(json_schema_extra={"pattern": NAME_PATTERN})
]
# The lengths of the columns names go to: teams, users and tokens; studies and datasets.
ShortName = Annotated[Printable, StringConstraints(max_length=100)]
LongName = Annotated[Printable, StringConstraints(max_length=200)]
Tag = Annotated[str, StringConstraints(pattern=TAG_PATTERN)]
PresetName = Annotated[
    str, StringConstraints(pattern=PRESET_NAME_PATTERN), Field(description="Letters, digits, _ . -")
]
# An uploaded dataset's name, the same identifier; all digits is refused where it is taken
# (those name uploads by id, and the dialects above have no lookahead to say so here).
DatasetName = Annotated[
    str,
    StringConstraints(pattern=PRESET_NAME_PATTERN),
    Field(description="Letters, digits, _ . -; not only digits"),
]
