"""The job form, generated from a job kind's config fields (ml.training.kinds.config_fields)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_LITERAL = re.compile(r"^Literal\[(.*)\]$")


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    help: str
    input: str  # checkbox | number | select | text
    data_type: str  # how dashboard.js parses the value: bool | int | float | str | json
    value: str
    nullable: bool
    options: tuple[str, ...] = ()
    step: str = ""

    @property
    def checked(self) -> bool:
        return self.value == "true"


def _literal_options(type_name: str) -> tuple[str, ...] | None:
    match = _LITERAL.match(type_name)
    if not match:
        return None
    return tuple(part.strip().strip("'\"") for part in match.group(1).split(","))


def form_field(field: dict[str, Any]) -> FormField:
    """One config knob as a form input; lists and dicts are edited as JSON text."""
    type_name = str(field["type"]).replace("typing.", "")
    parts = [p.strip() for p in type_name.split("|")]
    nullable = "None" in parts
    base = next((p for p in parts if p != "None"), "str")
    default = field.get("default")
    common = {
        "name": field["name"],
        "label": field["name"].replace("_", " "),
        "help": field.get("help", ""),
        "nullable": nullable,
    }
    options = _literal_options(base)
    if options:
        return FormField(**common, input="select", data_type="str", value=str(default), options=options)
    if base == "bool":
        return FormField(**common, input="checkbox", data_type="bool", value="true" if default else "false")
    if base in ("int", "float"):
        value = "" if default is None else str(default)
        step = "1" if base == "int" else "any"
        return FormField(**common, input="number", data_type=base, value=value, step=step)
    if base == "str" or base == "Path":
        return FormField(
            **common, input="text", data_type="str", value="" if default is None else str(default)
        )
    return FormField(**common, input="text", data_type="json", value=json.dumps(default))


def kind_forms(kinds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each kind with its fields, the base-model field first (the one knob almost everyone sets); the first
    kind a live worker can run is the one shown (`selected`), the others are offered disabled with why."""
    out = []
    for kind in kinds:
        fields = [form_field(f) for f in kind["config_fields"]]
        base = kind.get("base_model_field")
        fields.sort(key=lambda f: f.name != base)
        out.append({**kind, "fields": fields, "selected": False})
    chosen = next((k for k in out if k.get("available", True)), None)
    if chosen is not None:
        chosen["selected"] = True
    return out
