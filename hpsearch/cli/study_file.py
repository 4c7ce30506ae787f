"""Reading a study file on the command line: YAML or JSON, checked before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console

from hpsearch.api.fields import describe_error
from hpsearch.search.definition import StudyDefinition

console = Console()


def read_study_file(path: Path) -> tuple[Any, StudyDefinition]:
    """The file's document as written and its definition; exit 2 naming the field when invalid.

    The document is kept because a server should get what the user wrote, not this version's
    dump of it (whose defaults a server of another version may not know).
    """
    try:
        document: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        console.print(f"[red]cannot read {path}: {exc}[/red]")
        raise typer.Exit(2) from None
    try:
        return document, StudyDefinition.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors():
            console.print(f"[red]{path}: {describe_error(error, document)[1]}[/red]")
        raise typer.Exit(2) from None
