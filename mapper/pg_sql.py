"""The SQL of the PostgreSQL edge store: schema, the merge upsert, the read-model select, and the text
encodings they need. No I/O; mapper/pg_store.py runs these statements.

Merge rules are those of the SQLite store (record.py, netmapper_api.keys), written in SQL: min first_seen,
max last_seen, summed counts, bounded sorted unions (nm_union), the smallest non-empty example pod with its
labels, the smallest non-empty address. (namespace, name) and (key, value) pairs are stored as one text
joined by SEP, which sorts below every character of a valid name, so text order equals tuple order.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from mapper.record import MAX_REPORTING_NODES
from netmapper_api import keys

SEP: Final[str] = "\x01"

SCHEMA: Final[str] = """
CREATE TABLE IF NOT EXISTS nm_meta (
    id         int PRIMARY KEY CHECK (id = 1),
    store_id   text NOT NULL,    -- random, names this store in resume tokens
    generation bigint NOT NULL   -- bumped when edges are forgotten (reset, expiry)
);
CREATE TABLE IF NOT EXISTS nm_edges (
    key      bytea PRIMARY KEY,  -- keys.sort_key as UTF-8: byte order is the listing order
    ck smallint NOT NULL, c1 text NOT NULL, c2 text NOT NULL, c3 text NOT NULL,  -- client identity
    sk smallint NOT NULL, s1 text NOT NULL, s2 text NOT NULL, s3 text NOT NULL,  -- server identity
    port int NOT NULL, protocol smallint NOT NULL,
    cpod text COLLATE "C" NOT NULL, cip text COLLATE "C" NOT NULL,
    csvc text[] COLLATE "C" NOT NULL, cdns text[] COLLATE "C" NOT NULL, clabels text[] COLLATE "C" NOT NULL,
    spod text COLLATE "C" NOT NULL, sip text COLLATE "C" NOT NULL,
    ssvc text[] COLLATE "C" NOT NULL, sdns text[] COLLATE "C" NOT NULL, slabels text[] COLLATE "C" NOT NULL,
    first_ns bigint NOT NULL, last_ns bigint NOT NULL, count bigint NOT NULL,
    nodes text[] COLLATE "C" NOT NULL,
    xid bigint NOT NULL          -- id of the transaction that wrote the row last (read-model refresh)
);
CREATE INDEX IF NOT EXISTS nm_edges_xid ON nm_edges (xid);
CREATE TABLE IF NOT EXISTS nm_batches (
    instance text PRIMARY KEY,  -- one sniffer run
    sequence bigint NOT NULL,   -- its last merged batch: a batch at or below it is a resend
    applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS nm_lost (
    source int PRIMARY KEY, count bigint NOT NULL, first_ns bigint NOT NULL, last_ns bigint NOT NULL
);
CREATE OR REPLACE FUNCTION nm_union(a text[], b text[], lim int) RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(x ORDER BY x), '{}')
    FROM (SELECT DISTINCT x COLLATE "C" AS x FROM unnest(a || b) AS u(x) ORDER BY 1 LIMIT lim) AS s
$$;
"""

COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("key", "bytea"), ("ck", "smallint"), ("c1", "text"), ("c2", "text"), ("c3", "text"),
    ("sk", "smallint"), ("s1", "text"), ("s2", "text"), ("s3", "text"), ("port", "int"), ("protocol", "smallint"),
    ("cpod", "text"), ("cip", "text"), ("csvc", "array"), ("cdns", "array"), ("clabels", "array"),
    ("spod", "text"), ("sip", "text"), ("ssvc", "array"), ("sdns", "array"), ("slabels", "array"),
    ("first_ns", "bigint"), ("last_ns", "bigint"), ("count", "bigint"), ("nodes", "array"),
)


def _column_value(i: int, kind: str) -> str:
    """SQL reading column i of a batch row sent as a JSON array (one parameter per batch: the batch is
    serialized by Python's C JSON encoder and parsed by PostgreSQL's, far cheaper than 25 typed arrays)."""
    if kind == "bytea":
        return f"decode(r->>{i}, 'hex')"
    if kind == "array":  # sent as an array literal ({"a","b"}): PostgreSQL's own parser, no subquery
        return f"(r->>{i})::text[]"
    if kind == "text":
        return f"r->>{i}"
    return f"(r->>{i})::{kind}"


def _union(column: str, limit: int) -> str:
    """Bounded sorted union, skipped when nothing is new (the steady state: sniffers re-report)."""
    return (f"{column} = CASE WHEN e.{column} @> EXCLUDED.{column} THEN e.{column} "
            f"ELSE nm_union(e.{column}, EXCLUDED.{column}, {limit}) END")


def _example(side: str) -> str:
    """SQL choosing the example pod and labels of one side, as keys.merge_example does."""
    new = f"(EXCLUDED.{side}pod = '', EXCLUDED.{side}pod, EXCLUDED.{side}labels = '{{}}', EXCLUDED.{side}labels)"
    cur = f"(e.{side}pod = '', e.{side}pod, e.{side}labels = '{{}}', e.{side}labels)"
    return (f"{side}pod = CASE WHEN {new} < {cur} THEN EXCLUDED.{side}pod ELSE e.{side}pod END, "
            f"{side}labels = CASE WHEN {new} < {cur} THEN EXCLUDED.{side}labels ELSE e.{side}labels END")


def _smallest_ip(side: str) -> str:
    return (f"{side}ip = CASE WHEN EXCLUDED.{side}ip <> '' AND (e.{side}ip = '' OR EXCLUDED.{side}ip < e.{side}ip) "
            f"THEN EXCLUDED.{side}ip ELSE e.{side}ip END")


UPSERT: Final[str] = (
    "INSERT INTO nm_edges AS e ({cols}, xid) SELECT {values}, pg_current_xact_id()::text::bigint "
    "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n "
    "ON CONFLICT (key) DO UPDATE SET "
    "{cex}, {sex}, {cip}, {sip}, {csvc}, {ssvc}, {cdns}, {sdns}, {nodes}, "
    "first_ns = LEAST(e.first_ns, EXCLUDED.first_ns), last_ns = GREATEST(e.last_ns, EXCLUDED.last_ns), "
    # Counts saturate at the largest bigint instead of failing the batch (as the SQLite store's do).
    "count = CASE WHEN e.count > 9223372036854775807 - EXCLUDED.count THEN 9223372036854775807 "
    "ELSE e.count + EXCLUDED.count END, xid = EXCLUDED.xid "
    "RETURNING e.key, e.xmax = 0"  # xmax 0: the row was inserted, not updated (a new edge)
).format(
    cols=", ".join(c for c, _ in COLUMNS),
    values=", ".join(_column_value(i, t) for i, (_, t) in enumerate(COLUMNS)),
    cex=_example("c"), sex=_example("s"), cip=_smallest_ip("c"), sip=_smallest_ip("s"),
    csvc=_union("csvc", keys.MAX_SERVICES), ssvc=_union("ssvc", keys.MAX_SERVICES),
    cdns=_union("cdns", keys.MAX_DNS_NAMES), sdns=_union("sdns", keys.MAX_DNS_NAMES),
    nodes=_union("nodes", MAX_REPORTING_NODES),
)

SELECT_ROWS: Final[str] = (
    "SELECT key, ck, c1, c2, c3, sk, s1, s2, s3, port, protocol, cpod, cip, csvc, cdns, clabels, "
    "spod, sip, ssvc, sdns, slabels, first_ns, last_ns, count, nodes, xid FROM nm_edges"
)


def joined(pairs: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{a}{SEP}{b}" for a, b in pairs]


def array_literal(items: Sequence[str]) -> str:
    """A PostgreSQL text[] literal: every element quoted, backslash and quote escaped."""
    if not items:
        return "{}"
    return "{" + ",".join('"' + x.replace("\\", "\\\\").replace('"', '\\"') + '"' for x in items) + "}"


def split_pairs(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    return tuple(tuple(s.split(SEP, 1)) for s in items)  # type: ignore[misc]
