"""Slices of the item stream defined on item metadata: one key with a value (is_night = true, camera_id =
cam7) or a numeric range (min <= value < max). Pure functions shared by the freeze, the registry and the
routing table the cascade applies (the client carries a copy, checked equal by a test)."""

from __future__ import annotations

import math
import re
from typing import Any

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_slice(spec: dict[str, Any]) -> dict[str, Any]:
    """The canonical form of a slice spec; raises ValueError naming the field at fault."""
    key = spec.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ValueError("key: a metadata key (letters, digits, _ . -; at most 64 characters)")
    has_value = "value" in spec and spec["value"] is not None
    bounds = {b: spec.get(b) for b in ("min", "max") if spec.get(b) is not None}
    if has_value == bool(bounds):
        raise ValueError(
            "value: give either a value or a numeric range (min and/or max), not both or neither"
        )
    if has_value:
        value = spec["value"]
        if not isinstance(value, str | bool | int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise ValueError("value: must be a string, a boolean or a finite number")
        return {"key": key, "value": value}
    for name, bound in bounds.items():
        if not _is_number(bound):
            raise ValueError(f"{name}: must be a finite number")
    if len(bounds) == 2 and bounds["min"] >= bounds["max"]:
        raise ValueError("max: must be greater than min")
    return {"key": key, **bounds}


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(expected).lower() == str(actual).lower()
    if _is_number(expected) and _is_number(actual):
        return float(expected) == float(actual)
    return str(expected) == str(actual)


def slice_matches(spec: dict[str, Any], metadata: dict[str, Any]) -> bool:
    """Whether an item with `metadata` is in the slice (a missing key never is)."""
    actual = metadata.get(spec["key"])
    if actual is None:
        return False
    if "value" in spec:
        return _same(spec["value"], actual)
    if not _is_number(actual):
        return False
    return ("min" not in spec or actual >= spec["min"]) and ("max" not in spec or actual < spec["max"])


def slice_label(spec: dict[str, Any]) -> str:
    """A short human name: 'is_night = true', '10 <= lux < 50'."""
    if "value" in spec:
        value = str(spec["value"]).lower() if isinstance(spec["value"], bool) else spec["value"]
        return f"{spec['key']} = {value}"
    low = f"{spec['min']} <= " if "min" in spec else ""
    high = f" < {spec['max']}" if "max" in spec else ""
    return f"{low}{spec['key']}{high}"
