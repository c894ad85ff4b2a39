"""The JSON loader PostgreSQL connections use for json/jsonb columns."""

from __future__ import annotations

import json
import math

from app.core.db import json_loads


def test_json_columns_read_as_json_loads_reads_them_even_beyond_float_range():
    """msgspec reads the common case; a number jsonb can hold but a float cannot (1e400) falls back to
    json.loads (inf) instead of failing the read, and big integers stay exact."""
    body = b'{"boxes": [[0.1, 0.2, 0.3, 0.4]], "n": 123456789012345678901234567890, "s": "\\u00e9"}'
    assert json_loads(body) == json.loads(body)
    assert json_loads('{"far": 1e400}')["far"] == math.inf
