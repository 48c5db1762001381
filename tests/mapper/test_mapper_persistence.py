"""EdgeStore with a sqlite file: edges, resets and expiry survive a restart; bad rows never crash it."""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mapper.store import EdgeStore
from edge_testing import T0, edge, internet, summary, workload


def _edges() -> list:
    return [
        edge(workload("frontend", pod="frontend-1"), workload("cart", service=("cart", "shop")), 8080, count=3),
        edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379, first=T0, last=T0 + 9),
        edge(workload("frontend"), internet("93.184.216.34", "example.com"), 443),
    ]


def test_edges_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge(_edges(), "node-a")
        store.merge(_edges()[:1], "node-b")
        before = store.list()
    with EdgeStore(db) as store:
        assert store.list() == before
        assert len(store) == 3
        # Merging continues on top of what was loaded, updating the same rows.
        store.merge(_edges()[:1], "node-c")
        store.merge([edge(workload("new"), workload("cart"))], "node-c")
    with EdgeStore(db) as store:
        by_pair = {summary(e)[:2]: e for e in store.list()}
        assert by_pair[("frontend.shop", "cart.shop")].count == 9
        assert list(by_pair[("frontend.shop", "cart.shop")].reporting_nodes) == ["node-a", "node-b", "node-c"]
        assert ("new.shop", "cart.shop") in by_pair
        assert len(by_pair) == 4


def test_every_service_a_workload_was_reached_through_survives(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge([edge(workload("a"), workload("cart", service=("cart-v2", "shop")))], "n")
        store.merge([edge(workload("a"), workload("cart", service=("cart", "shop")))], "n")
    with EdgeStore(db) as store:
        from netmapper_api.v1 import edge_pb2

        assert len(store.list([edge_pb2.EdgeFilter(server="cart-v2")])) == 1
        assert store.list()[0].server.service.name == "cart"


def test_reset_and_expire_are_durable(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge([edge(workload("a"), workload("old"), first=T0), edge(workload("a"), workload("new"), first=T0 + 100)], "n")
        store.flush()
        assert store.expire(T0 + 50) == 1
    with EdgeStore(db) as store:
        assert [summary(e)[1] for e in store.list()] == ["new.shop"]
        assert store.reset() == 1
    with EdgeStore(db) as store:
        assert store.list() == []


def test_changes_are_written_behind_without_close(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    store = EdgeStore(db, flush_interval=0.1)
    try:
        store.merge(_edges(), "n")
        deadline = time.monotonic() + 5
        rows = 0
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as reader:
                rows = reader.execute("SELECT count(*) FROM edges").fetchone()[0]
            if rows == 3:
                break
            time.sleep(0.05)
        assert rows == 3
    finally:
        store.close()


def test_unreadable_rows_are_skipped(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge(_edges(), "n")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO edges (id, edge, extra) VALUES (100, x'ffff', NULL)")
        conn.execute("INSERT INTO edges (id, edge, extra) VALUES (101, x'', '{broken')")
    with EdgeStore(db) as store:
        assert len(store) == 3
        store.merge([edge(workload("x"), workload("y"))], "n")  # new rows must not reuse the bad ids
    with EdgeStore(db) as store:
        assert len(store) == 4


def test_close_is_idempotent(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "edges.db")
    store.close()
    store.close()


def _stored(db: Path) -> dict[int, tuple[bytes, int | None]]:
    """row id -> (edge blob, count column) as the file holds them."""
    with sqlite3.connect(db) as conn:
        return {i: (blob, count) for i, blob, count in conn.execute("SELECT id, edge, count FROM edges")}


def test_a_re_reported_edge_is_checkpointed_as_its_numbers_and_restarts_exact(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge(_edges(), "node-a")
        assert store.flush() == 3  # new edges: written whole
        whole = _stored(db)
        assert sorted(c for _, c in whole.values()) == [1, 1, 3]
        # The same edges again, later: only first/last/count change, so only those are written.
        store.merge([edge(workload("frontend", pod="frontend-1"), workload("cart", service=("cart", "shop")), 8080,
                          first=T0 + 50, last=T0 + 60, count=4)], "node-a")
        assert store.flush() == 0
        numbers = _stored(db)
        assert {i: blob for i, (blob, _) in numbers.items()} == {i: blob for i, (blob, _) in whole.items()}
        assert sorted(c for _, c in numbers.values()) == [1, 1, 7]
        # A new pod of the client changes the record's attributes: written whole again.
        store.merge([edge(workload("frontend", pod="frontend-0"), workload("cart", service=("cart", "shop")), 8080)],
                    "node-a")
        assert store.flush() == 1
        assert sum(blob != whole[i][0] for i, (blob, _) in _stored(db).items()) == 1
        store.merge([edge(workload("cart"), workload("redis", kind="StatefulSet"), 6379, first=T0 - 5, last=T0 + 99,
                          count=2)], "node-a")
        store.flush()
        before = store.list()
    with EdgeStore(db) as again:
        assert again.list() == before
        redis = next(e for e in again.list() if summary(e)[1] == "redis.shop")
        assert (redis.first_seen.ToSeconds(), redis.last_seen.ToSeconds(), redis.count) == (T0 - 5, T0 + 99, 3)


def test_a_file_written_before_the_number_columns_loads_and_is_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge(_edges(), "n")
        before = store.list()
    with sqlite3.connect(db) as conn:  # the previous layout: id, edge (the whole Edge, numbers inside), extra
        conn.executescript("DROP TABLE edges; CREATE TABLE edges (id INTEGER PRIMARY KEY, edge BLOB NOT NULL, extra TEXT);")
        conn.executemany("INSERT INTO edges (id, edge) VALUES (?, ?)",
                         [(i, e.SerializeToString()) for i, e in enumerate(before, 1)])
    with EdgeStore(db) as store:
        assert store.list() == before
        store.merge(_edges()[:1], "n")
    with EdgeStore(db) as store:
        assert sorted(e.count for e in store.list()) == [1, 1, 6]


def test_a_checkpoint_that_fails_part_way_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """A checkpoint is one transaction: the edge rows it updated and the journal position it includes
    change together or not at all (else a restart would replay journaled batches onto rows that
    already hold them, counting them twice)."""
    from mapper.persistence import Checkpoint, EdgeFile

    db = tmp_path / "edges.db"
    with EdgeStore(db) as store:
        store.merge(_edges(), "n")
    before = _stored(db)
    file = EdgeFile(db)
    try:
        through = file.journal_through()
        bad_applied = [("instance", "not a number", None)]  # fails after the edge rows were written
        try:
            file.checkpoint(Checkpoint(rows=[], numbers=[(T0, T0, 1000, i) for i in before], deleted=[],
                                       applied=bad_applied, forgotten_instances=[], through=through + 5))
        except Exception:
            pass
        else:
            raise AssertionError("the checkpoint should have failed")
        assert file.journal_through() == through
    finally:
        file.close()
    assert _stored(db) == before


def test_a_store_with_fsync_keeps_what_it_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "edges.db"
    with EdgeStore(db, fsync=True) as store:
        result = store.merge(_edges(), "n", batch=("sniffer-1", 1), raw=None)
        assert store.wait_durable(result, timeout=10)
        before = store.list()
    with EdgeStore(db, fsync=True) as store:
        assert store.list() == before
        assert store.merge(_edges(), "n", batch=("sniffer-1", 1)).duplicate  # the batch identity survived too
