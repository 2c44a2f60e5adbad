"""Dagster run config generated from the library's config dataclasses, so each parameter is declared once.

A stage's parameters live in a `lib/` dataclass (defaults, and the text the web UI's Launchpad shows in
`field(metadata={"help": ...})`). `dagster_config_from` turns it into a `dagster.Config` class with the
same fields, nested dataclasses becoming nested configs; `to_lib()` gives the dataclass back (where the
library validates the values). Fields that only the Dagster layer knows are added with `extra`.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from dagster import Config
from pydantic import Field, create_model


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return ...


def dagster_config_from(lib_type: type, name: str | None = None, doc: str | None = None,
                        extra: dict[str, tuple[type, Any, str]] | None = None,
                        exclude: tuple[str, ...] = ()) -> type[Config]:
    """A `Config` subclass mirroring the dataclass `lib_type` (plus `extra`: name -> (type, default, help))."""
    hints = typing.get_type_hints(lib_type)
    fields: dict[str, tuple[Any, Any]] = {}
    nested: dict[str, type] = {}
    for f in dataclasses.fields(lib_type):
        if f.name in exclude or not f.init:
            continue
        tp = hints[f.name]
        default = _field_default(f)
        help_text = f.metadata.get("help", "")
        if dataclasses.is_dataclass(tp):
            sub = dagster_config_from(tp)
            nested[f.name] = tp
            fields[f.name] = (sub, Field(default_factory=sub, description=help_text or sub.__doc__))
        elif default is ...:
            fields[f.name] = (tp, Field(description=help_text))
        elif isinstance(default, list | dict | set):
            fields[f.name] = (tp, Field(default_factory=lambda d=default: type(d)(d), description=help_text))
        else:
            fields[f.name] = (tp, Field(default=default, description=help_text))
    extra_names = set()
    for extra_name, (tp, default, help_text) in (extra or {}).items():
        fields[extra_name] = (tp, Field(default=default, description=help_text))
        extra_names.add(extra_name)

    def to_lib(self) -> Any:
        """The library dataclass with this config's values (Dagster-only fields left out)."""
        values = {}
        for f in dataclasses.fields(lib_type):
            if f.name in exclude or not f.init:
                continue
            value = getattr(self, f.name)
            values[f.name] = value.to_lib() if f.name in nested else value
        return lib_type(**values)

    cls = create_model(name or f"{lib_type.__name__}Config", __base__=Config, __doc__=doc or lib_type.__doc__,
                       **fields)
    cls.to_lib = to_lib
    return cls
