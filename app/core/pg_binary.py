"""PostgreSQL's binary wire formats built and parsed by numpy: whole columns as one array parameter, one binary
COPY, or one row of aggregated arrays, never a Python object per value. Imported only on PostgreSQL paths,
so a SQLite deployment never loads the driver."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from psycopg.adapt import Dumper, Loader
from psycopg.pq import Format


def binary_cursor(raw_connection: Any) -> Any:
    """A cursor of the driver connection that sends `PackedArray` parameters in binary."""
    cursor = raw_connection.cursor()
    cursor.adapters.register_dumper(PackedArray, PackedArrayDumper)
    return cursor


# PostgreSQL binary array wire format: element OID, array OID, numpy big-endian element type.
_PG_ELEMENTS = {"float8": (701, 1022, ">f8"), "int8": (20, 1016, ">i8"), "bool": (16, 1000, "u1")}


class PackedArray:
    """A one-dimensional PostgreSQL array already in binary wire format (built by numpy, not per element)."""

    __slots__ = ("data", "oid")

    def __init__(self, data: bytes, oid: int) -> None:
        self.data, self.oid = data, oid


class PackedArrayDumper(Dumper):
    format = Format.BINARY

    def get_key(self, obj: Any, format: Any) -> Any:
        return (PackedArray, obj.oid)

    def upgrade(self, obj: Any, format: Any) -> Dumper:
        dumper = PackedArrayDumper(PackedArray)
        dumper.oid = obj.oid
        return dumper

    def dump(self, obj: Any) -> bytes:
        return obj.data


def pg_array(values: Any, element: str) -> PackedArray:
    """`values` as a binary float8[] / int8[] / bool[] parameter: psycopg's list dumper costs ~2.5 µs a value."""
    element_oid, array_oid, dtype = _PG_ELEMENTS[element]
    values = np.asarray(values)
    body = np.empty(len(values), dtype=[("size", ">i4"), ("value", dtype)])
    body["size"] = np.dtype(dtype).itemsize
    body["value"] = values
    header = struct.pack(">iiiii", 1, 0, element_oid, len(values), 1)  # ndim, has-nulls, OID, length, base
    return PackedArray(header + body.tobytes(), array_oid)


# --- binary COPY: whole columns into PostgreSQL from numpy arrays -------------------------------------

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = _COPY_SIGNATURE + struct.pack(">ii", 0, 0)  # no OIDs, no header extension
_COPY_TRAILER = struct.pack(">h", -1)
# The wire type of each supported column type (binary COPY is big-endian).
_COPY_TYPES = {"int8": ">i8", "int4": ">i4", "float8": ">f8", "bool": "u1"}


def _row_dtype(columns: list[tuple[str, str]]) -> np.dtype:
    """One binary COPY tuple of fixed-width, never-NULL fields: a field count, then (length, value) pairs."""
    fields: list[tuple[str, str]] = [("_count", ">i2")]
    for name, kind in columns:
        fields += [(f"_len_{name}", ">i4"), (name, _COPY_TYPES[kind])]
    return np.dtype(fields)


def copy_in(cursor: Any, table: str, columns: dict[str, tuple[str, np.ndarray]]) -> None:
    """Writes equal-length arrays into `table` with one binary COPY; columns map name -> (type, values).

    NaN travels as a float (the statement reading the table turns it into NULL where needed).
    """
    spec = [(name, kind) for name, (kind, _) in columns.items()]
    dtype = _row_dtype(spec)
    n = len(next(iter(columns.values()))[1])
    rows = np.empty(n, dtype=dtype)
    rows["_count"] = len(spec)
    for name, (kind, values) in columns.items():
        rows[f"_len_{name}"] = np.dtype(_COPY_TYPES[kind]).itemsize
        rows[name] = values
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.write(_COPY_HEADER)
        copy.write(rows.tobytes())
        copy.write(_COPY_TRAILER)


# --- binary arrays out: one row of aggregated columns, each parsed by numpy ---------------------------------

_ARRAY_OIDS = {"int8": 1016, "int4": 1007, "float8": 1022, "bool": 1000}


class _RawArrayLoader(Loader):
    """Leaves a binary array as its wire bytes (psycopg would build a Python list, one object per value)."""

    format = Format.BINARY

    def load(self, data: Any) -> bytes:
        return bytes(data)


def _parse_array(data: bytes, kind: str) -> np.ndarray:
    """A one-dimensional binary array without NULLs: (ndim, flags, oid, length, lower bound), then
    (int32 size, value) pairs."""
    ndim = struct.unpack_from(">i", data, 0)[0]
    if ndim == 0:
        return np.zeros(0, dtype=np.dtype(_COPY_TYPES[kind]).newbyteorder("="))
    if ndim != 1 or struct.unpack_from(">i", data, 4)[0]:
        raise ValueError("expected a one-dimensional array without NULLs")
    values = np.frombuffer(data, dtype=[("size", ">i4"), ("value", _COPY_TYPES[kind])], offset=20)["value"]
    return values.astype(values.dtype.newbyteorder("="))


def fetch_columns(cursor: Any, query: str, params: Any, kinds: list[str]) -> list[np.ndarray]:
    """Runs `query`, which must return one row of one-dimensional arrays (array_agg of never-NULL values), in
    binary and returns them as numpy arrays: a million values cost one memory copy, not a million objects."""
    for kind in set(kinds):
        cursor.adapters.register_loader(_ARRAY_OIDS[kind], _RawArrayLoader)
    row = cursor.execute(query, params, binary=True).fetchone()
    return [
        np.zeros(0, dtype=np.dtype(_COPY_TYPES[k]).newbyteorder("=")) if v is None else _parse_array(v, k)
        for v, k in zip(row, kinds, strict=True)
    ]
