"""Data out: a study's trials as a flat table (CSV or JSON), a preset as a runnable study file."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import yaml
from fastapi import Response
from sqlalchemy.orm import Session

from hpsearch.api.schemas import PresetPublic, TrialPublic
from hpsearch.db import queries
from hpsearch.db.models import Preset, Study
from hpsearch.search.definition import BUILTIN_TRAINER

FIRST_COLUMNS = ("number", "state", "reason", "value")
LAST_COLUMNS = ("started_at", "finished_at")
ENGINE_SECTIONS = ("dataset", "model", "training")


def attachment(text: str | bytes, media_type: str, filename: str) -> Response:
    """An answer a browser saves as `filename` rather than shows."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(text, media_type=media_type, headers=headers)


def trials_table(session: Session, study: Study) -> tuple[list[str], list[dict[str, Any]]]:
    """A study's trials as columns and one flat row per trial, in number order.

    The columns: number, state, reason, value (the first objective), `values.<metric>` for
    each final metric any trial returned, `params.<path>` for each parameter, started_at,
    finished_at. Values are those of the trials route, times in its format.
    """
    trials = [
        TrialPublic.model_validate(t, from_attributes=True).model_dump(mode="json")
        for t in queries.trials_of(session, study.id)
    ]
    paths = list(study.definition.get("space", {}))
    paths += sorted({p for t in trials for p in t["params"]} - set(paths))
    metrics = sorted({m for t in trials for m in t["values"] or {}})
    columns = [
        *FIRST_COLUMNS,
        *(f"values.{m}" for m in metrics),
        *(f"params.{p}" for p in paths),
        *LAST_COLUMNS,
    ]
    rows = [
        {
            **{c: trial[c] for c in FIRST_COLUMNS},
            **{f"values.{m}": (trial["values"] or {}).get(m) for m in metrics},
            **{f"params.{p}": trial["params"].get(p) for p in paths},
            **{c: trial[c] for c in LAST_COLUMNS},
        }
        for trial in trials
    ]
    return columns, rows


def rows_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """The rows as CSV with a header. A missing value is an empty cell, a string is written as
    is, anything else (numbers, booleans, lists) as its JSON, so that a reader decodes it."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[column]) for column in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def preset_study_file(session: Session, preset: Preset) -> dict[str, Any]:
    """A study file that trains the preset's config once, as `hpsearch run` and the studies
    route accept it: the preset's study's trainer and objectives, no space, one trial."""
    study = session.get(Study, preset.study_id) if preset.study_id else None
    definition = study.definition if study is not None else {}
    trainer = definition.get("trainer", BUILTIN_TRAINER)
    document: dict[str, Any] = {"name": preset.name}
    if trainer == BUILTIN_TRAINER and set(preset.config) <= set(ENGINE_SECTIONS):
        document |= preset.config
    else:
        document |= {"trainer": trainer, "config": preset.config}
        if "seed" in definition:
            document["seed"] = definition["seed"]
    if "objective" in definition:
        document["objective"] = definition["objective"]
    return document | {"budget": {"trials": 1}}


def study_file_yaml(document: dict[str, Any], public: PresetPublic) -> str:
    """The study file as YAML, headed by comments saying where the preset came from."""
    origin = f"study {public.study_id}, trial {public.trial_number}" if public.study_id else "?"
    metrics = " ".join(f"{k}={_cell(v)}" for k, v in sorted((public.values or {}).items()))
    header = [
        f"Preset {public.ref} ({public.visibility}), from {origin}; engine"
        f" {public.engine_version}; by {public.created_by or '?'}"
        f" at {public.created_at:%Y-%m-%d %H:%M} UTC",
        f"Its trial reached: {metrics or '-'}",
        f"Dataset hash: {public.dataset_hash}",
        "Run it as is: hpsearch run THIS_FILE (or submit it); add a space to tune from here.",
    ]
    comments = "".join(f"# {line}\n" for line in header)
    return comments + yaml.safe_dump(document, sort_keys=False)
