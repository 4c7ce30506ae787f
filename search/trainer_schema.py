"""What the search layer knows of a trainer: its announced description, and the checks a study
makes against it. The config is judged by its JSON schema, so nothing here imports the
trainer's code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import jsonschema_rs


class SettingError(ValueError):
    """A study the trainer cannot run; ``field`` is the dotted field of the study file."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


@dataclass(frozen=True)
class Setting:
    """One leaf setting of a trainer's config, as a study file names it."""

    path: str
    type: str
    """e.g. `number`, `integer or null`, `list of integer`, `one of: relu, tanh`."""
    default: Any = None
    required: bool = False
    """True when the config has no default for it: a study must give it."""
    bounds: str | None = None
    """e.g. `>= 0, < 1`; None when unbounded."""
    description: str | None = None


# JSON schema's bound keywords, as a study file's author reads them.
_BOUNDS = (
    ("minimum", ">="),
    ("exclusiveMinimum", ">"),
    ("maximum", "<="),
    ("exclusiveMaximum", "<"),
)


@dataclass(frozen=True)
class TrainerInfo:
    """A trainer as workers announce it: name, version, config schema and metrics."""

    name: str
    version: str
    config_schema: dict[str, Any]
    step_metrics: tuple[str, ...]
    final_metrics: tuple[str, ...]
    resumable: bool = False  # it saves and resumes its state (`Trainer.resumable`)

    @cached_property
    def _defs(self) -> dict[str, Any]:
        return self.config_schema.get("$defs", {})

    def setting_exists(self, path: str) -> bool:
        """Whether a dotted path names a setting of the config (in any member of a union)."""
        return bool(self._schemas_at(path))

    def setting_error(self, path: str, value: Any) -> str | None:
        """Why `value` cannot be the setting at `path`, judged on its own; None if it can."""
        errors = [self._error(schema, value) for schema in self._schemas_at(path)]
        return None if not errors or None in errors else errors[0]

    def config_errors(self, config: Any) -> list[tuple[str, str]]:
        """(dotted field, reason) of each way `config` breaks the schema."""
        validator = jsonschema_rs.validator_for(self.config_schema)
        return [
            (".".join(str(p) for p in error.instance_path), error.message)
            for error in validator.iter_errors(config)
        ]

    def settings(self) -> list[Setting]:
        """Every leaf setting of the config by dotted path, in the schema's order; a path that
        several members of a union have is listed once, with each member's type."""
        found: dict[str, Setting] = {}
        for setting in self._leaves(self.config_schema, ""):
            known = found.get(setting.path)
            if known is None:
                found[setting.path] = setting
            elif setting.type not in known.type.split(" | "):
                found[setting.path] = replace(known, type=f"{known.type} | {setting.type}")
        return list(found.values())

    def _leaves(self, schema: dict[str, Any], prefix: str) -> Iterator[Setting]:
        for member in self._members(schema):
            for name, field in member.get("properties", {}).items():
                path = f"{prefix}{name}"
                if any("properties" in m for m in self._members(field)):
                    yield from self._leaves(field, f"{path}.")
                else:
                    yield self._leaf(path, field)

    def _leaf(self, path: str, field: dict[str, Any]) -> Setting:
        kinds = [self._resolve(b) for b in self._alternatives(field)] or [self._resolve(field)]
        bounded = next((k for k in kinds if k.get("type") != "null"), kinds[0])
        if bounded.get("type") == "array":
            bounded = self._resolve(bounded.get("items", {}))
        bounds = [f"{sign} {bounded[key]}" for key, sign in _BOUNDS if key in bounded]
        return Setting(
            path=path,
            type=" or ".join(_type_name(k) for k in kinds),
            default=field.get("default"),
            required="default" not in field,
            bounds=", ".join(bounds) or None,
            description=field.get("description"),
        )

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in schema:
            return self._defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return schema

    def _error(self, schema: dict[str, Any], value: Any) -> str | None:
        validator = jsonschema_rs.validator_for({**schema, "$defs": self._defs})
        error = next(iter(validator.iter_errors(value)), None)
        if error is None:
            return None
        # A nullable or union setting says only "not valid under any of the schemas": name the
        # reason of the first alternative that is not null instead.
        for branch in self._alternatives(schema):
            if branch.get("type") != "null":
                return self._error(branch, value) or error.message
        return error.message

    def _schemas_at(self, path: str) -> list[dict[str, Any]]:
        nodes = [self.config_schema]
        for part in path.split("."):
            nodes = [
                child
                for parent in nodes
                for node in self._members(parent)
                if (child := _child(node, part)) is not None
            ]
        return nodes

    def _members(self, schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The object schemas a schema may stand for: through references and unions."""
        if "$ref" in schema:
            yield from self._members(self._defs[schema["$ref"].rsplit("/", 1)[-1]])
            return
        alternatives = self._alternatives(schema)
        if alternatives:
            for branch in alternatives:
                yield from self._members(branch)
            return
        yield schema

    @staticmethod
    def _alternatives(schema: dict[str, Any]) -> list[dict[str, Any]]:
        return list(schema.get("anyOf", schema.get("oneOf", [])))


def _child(node: dict[str, Any], part: str) -> dict[str, Any] | None:
    """The schema of key `part` of an object schema; None when it has no such key. A config
    that takes any key (pydantic's `extra="allow"`, or a schema of anything) has every one."""
    if part in node.get("properties", {}):
        return node["properties"][part]
    extra = node.get("additionalProperties", not node)
    if extra is True:
        return {}
    return extra or None


def _type_name(schema: dict[str, Any]) -> str:
    """A leaf's type as a study file's author reads it."""
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of: " + ", ".join(str(choice) for choice in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type_name(schema.get('items', {}))}"
    return str(schema.get("type", "any"))
