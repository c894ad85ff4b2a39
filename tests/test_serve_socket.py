"""`hardcase serve --workers N` listens on a socket whose accepted connections have Nagle's algorithm off.
uvicorn binds that socket with protocol 0 (uvicorn issue #3149): asyncio then leaves TCP_NODELAY unset, and
each keep-alive request after the first waited ~40 ms for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket
from concurrent.futures import ThreadPoolExecutor

import uvicorn

from app.runner import tcp_listener


def _nodelay_of_an_accepted_connection(listener: socket.socket) -> int:
    async def accept_one() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Report, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
            return nodelay

    with ThreadPoolExecutor(1) as thread:  # its own event loop, whatever runs in this one
        return thread.submit(lambda: asyncio.run(accept_one())).result()


def test_the_workers_listener_is_tcp_so_accepted_connections_get_tcp_nodelay():
    bound = uvicorn.Config("app.main:create_app", host="127.0.0.1", port=0).bind_socket()
    listener = tcp_listener(bound)
    assert listener.proto == socket.IPPROTO_TCP and listener.get_inheritable()
    assert _nodelay_of_an_accepted_connection(listener) != 0


def test_a_listener_that_is_already_tcp_is_kept_as_it_is():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        assert tcp_listener(sock) is sock
