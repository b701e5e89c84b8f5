"""Every database connection forecourt opens keeps alive on both ends (real PostgreSQL).

A worker machine that vanished mid-transaction (power, network) held its row locks until the
server's TCP keepalive noticed, some two hours by default; a worker, or the API's job
listener, waited as long on a server that vanished. The checks read what the server and
this process's sockets actually use. On a Unix socket (the embedded server) keepalives do
not apply: there the connection's own parameters are checked.
"""

from __future__ import annotations

import asyncio
import os
import socket

import psutil
from psycopg.conninfo import make_conninfo

from crawler.config import get_settings
from crawler.db import connect, database_url
from crawler.db.connect import KEEPALIVE, USER_TIMEOUT_MS, sibling


def _over_tcp(conn) -> bool:
    return not (conn.info.host or "/").startswith("/")


def _socket_keepalive(fd: int) -> tuple[int, ...]:
    """(SO_KEEPALIVE, idle, interval, count, user timeout ms) of a TCP socket of ours."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT))
    finally:
        sock.close()


def _assert_keeps_alive(conn, expected=KEEPALIVE) -> None:
    def show(name: str) -> str:
        return conn.execute(f"SHOW {name}").fetchone()[name]

    assert show("jit") == "off"
    if _over_tcp(conn):
        assert (int(show("tcp_keepalives_idle")), int(show("tcp_keepalives_interval")),
                int(show("tcp_keepalives_count"))) == KEEPALIVE
        assert int(show("tcp_user_timeout")) == USER_TIMEOUT_MS
        assert _socket_keepalive(conn.fileno()) == (1, *expected, USER_TIMEOUT_MS)
    else:
        given = conn.info.get_parameters()
        assert (given["keepalives"], given["keepalives_idle"]) == ("1", str(expected[0]))


def test_a_connection_and_its_siblings_keep_alive_on_both_ends(db):
    with connect() as conn:
        _assert_keeps_alive(conn)
        with sibling(conn) as second:  # a feed run's writer and reader
            _assert_keeps_alive(second)


def test_the_database_urls_own_settings_win(db):
    """DATABASE_URL's options and keepalives are kept (its options used to be replaced by
    forecourt's `-c jit=off`), forecourt's fill in the rest."""
    url = make_conninfo(database_url(), keepalives_idle=7,
                        options="-c statement_timeout=4321 -c tcp_keepalives_count=5")
    with connect(url) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "4321ms"
        assert conn.execute("SHOW jit").fetchone()["jit"] == "off"
        if _over_tcp(conn):
            assert conn.execute("SHOW tcp_keepalives_count").fetchone()[
                "tcp_keepalives_count"] == "5"
            assert _socket_keepalive(conn.fileno())[1] == 7
        else:
            assert conn.info.get_parameters()["keepalives_idle"] == "7"


def test_every_connection_the_api_holds_keeps_alive(db):
    """The API's pools and its job listener (LISTEN: it wakes pollers and forgets revoked
    tokens), which waited on a vanished server for ever."""
    from jobs.api.runtime import close_runtime, open_runtime

    async def check() -> None:
        runtime = await open_runtime(get_settings())
        try:
            await asyncio.wait_for(runtime.watch.listening.wait(), 30)
            async with runtime.pool.connection() as conn:
                over_tcp = _over_tcp(conn)
                shown = await (await conn.execute("SHOW tcp_keepalives_idle")).fetchone()
                given = conn.info.get_parameters()
            if not over_tcp:
                assert (given["keepalives"], given["keepalives_idle"]) == ("1", "20")
                return
            assert int(shown["tcp_keepalives_idle"]) == KEEPALIVE[0]
            port = int(conn.info.port)
            ours = [c for c in psutil.Process().net_connections(kind="tcp")
                    if c.raddr and c.raddr.port == port and c.status == "ESTABLISHED"]
            # the async pool's two, and the listener's
            assert len(ours) >= 3, ours
            for c in ours:
                assert _socket_keepalive(c.fd) == (1, *KEEPALIVE, USER_TIMEOUT_MS), c
        finally:
            await close_runtime(runtime)

    asyncio.run(check())
