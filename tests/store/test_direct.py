"""Kept per-thread connections and the direct queries run on them (``store.direct``)."""

from __future__ import annotations

import threading

from sqlalchemy import literal_column, select

from store.direct import DirectQuery, KeptConnections


def test_a_query_after_close_reconnects_and_drop_is_safe(db):
    connections = KeptConnections(db)
    one = DirectQuery(connections, select(literal_column("1")))
    assert one.rows() == [[1]] and connections.kept()
    first = connections.connection()
    connections.close()
    assert not connections.kept()  # the closed connection is never handed out again
    assert one.rows() == [[1]]
    assert connections.connection() is not first
    connections.close()
    connections.drop()  # after close: nothing left to forget, no error
    assert one.rows() == [[1]]


def test_each_thread_keeps_its_own_connection(db):
    connections = KeptConnections(db)
    seen = []

    def use() -> None:
        rows = DirectQuery(connections, select(literal_column("2"))).rows()
        seen.append((id(connections.connection()), rows))

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({connection for connection, _ in seen}) == 3 and all(rows == [[2]] for _, rows in seen)
    connections.close()
