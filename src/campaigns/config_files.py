"""Reading the YAML configuration files (ladder, policy) into validated models."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


def load_yaml_model(path: Path, model: type[Model], error: type[ValueError], what: str) -> Model:
    """Read and validate ``path``; every problem is raised as ``error`` naming the file."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{path}: {what} file not found") from exc
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            (".".join(str(part) for part in e["loc"]) + ": " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise error(f"{path}: {problems}") from exc


def name_entries(data, section: str, key: str):
    """In ``data[section]`` (a mapping of name → entry), copy each name into its entry as ``key``.

    For ``mode="before"`` validators: the YAML stays ``pre_due: {...}`` while the
    model gets entries that know their own name.
    """
    if isinstance(data, dict) and isinstance(data.get(section), dict):
        data = dict(data)
        data[section] = {name: {key: name, **(entry or {})} for name, entry in data[section].items()}
    return data
