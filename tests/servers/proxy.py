"""FlakyProxy: a loopback TCP proxy that breaks connections on demand.

Used to test "the IMAP connection drops mid-fetch"::

    with FlakyProxy(srv.host, srv.port, cut_after_bytes=50_000) as px:
        c = IMAPClient(px.host, px.port, ssl=False, timeout=5)   # via the proxy
        ...                       # the client gets exactly 50,000 bytes, then EOF
        px.cut_after_bytes = None  # from now on: forward everything
        px.drop_all()              # close every open connection right now
        px.held = True             # forward nothing, either way, until set back to False

``cut_after_bytes`` counts bytes from server to client per connection, since
that connection was accepted; it is read for every chunk, so it can be changed
at runtime (a connection already past the new limit is cut at its next chunk
from the server). ``0`` cuts before the server greeting. New connections are
always accepted (until ``stop()``), so reconnect logic can be tested.

Each connection is served by one thread using select() with short timeouts;
all blocking calls have timeouts, ``stop()`` joins every thread.
"""
from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

__all__ = ["FlakyProxy"]


class _Conn:
    __slots__ = ("client", "upstream", "to_client", "to_server", "thread")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.to_client = 0
        self.to_server = 0
        self.thread: threading.Thread | None = None

    def shutdown(self) -> None:
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class FlakyProxy:
    """TCP proxy 127.0.0.1:<free port> → target_host:target_port."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        cut_after_bytes: int | None = None,
        listen_host: str = "127.0.0.1",
        connect_timeout: float = 5.0,
        io_timeout: float = 30.0,
    ) -> None:
        self.target = (target_host, int(target_port))
        self.cut_after_bytes = cut_after_bytes
        self.held = False  # True: every connection stalls (nothing forwarded) until False again
        self.host = listen_host
        self.port = 0
        self.connect_timeout = connect_timeout
        self.io_timeout = io_timeout  # bound on a single send to a slow peer
        # counters (for assertions)
        self.connections = 0  # accepted so far
        self.cuts = 0  # connections cut by cut_after_bytes
        self.bytes_to_client = 0
        self.bytes_to_server = 0
        self._lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None

    # ---------------------------------------------------------------- control
    def start(self) -> "FlakyProxy":
        if self._accept_thread is not None:
            return self
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.host, 0))
        ls.listen(64)
        ls.settimeout(0.2)
        self._listener = ls
        self.port = ls.getsockname()[1]
        self._stop.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"FlakyProxy:{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def drop_all(self) -> int:
        """Close every open connection now; returns how many were open."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            conn.shutdown()  # wakes the connection's thread, which closes it
        return len(conns)

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, drop all connections, join the threads."""
        self._stop.set()
        self.drop_all()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
            self._accept_thread = None
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        with self._lock:
            threads = [c.thread for c in self._conns if c.thread is not None]
        for t in threads:
            t.join(timeout)

    def __enter__(self) -> "FlakyProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- threads
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            for s in (client, upstream):
                s.settimeout(self.io_timeout)
                with contextlib.suppress(OSError):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, upstream)
            conn.thread = threading.Thread(target=self._pump, args=(conn,), name=f"FlakyProxy:{self.port}:conn", daemon=True)
            with self._lock:
                self.connections += 1
                self._conns.add(conn)
            conn.thread.start()

    def _pump(self, conn: _Conn) -> None:
        c, u = conn.client, conn.upstream
        try:
            while not self._stop.is_set():
                if self.held:
                    time.sleep(0.02)
                    continue
                try:
                    readable, _, _ = select.select([c, u], [], [], 0.2)
                except (OSError, ValueError):
                    return
                if c in readable:
                    data = c.recv(65536)
                    if not data:
                        return
                    u.sendall(data)
                    conn.to_server += len(data)
                    with self._lock:
                        self.bytes_to_server += len(data)
                if u in readable:
                    data = u.recv(65536)
                    if not data:
                        return
                    limit = self.cut_after_bytes
                    if limit is not None and conn.to_client + len(data) >= limit:
                        part = data[: max(0, limit - conn.to_client)]
                        if part:
                            c.sendall(part)
                            conn.to_client += len(part)
                            with self._lock:
                                self.bytes_to_client += len(part)
                        with self._lock:
                            self.cuts += 1
                        self._cut(conn)
                        return
                    c.sendall(data)
                    conn.to_client += len(data)
                    with self._lock:
                        self.bytes_to_client += len(data)
        except OSError:
            return
        finally:
            for s in (c, u):
                with contextlib.suppress(OSError):
                    s.close()
            with self._lock:
                self._conns.discard(conn)

    @staticmethod
    def _cut(conn: _Conn) -> None:
        """Close the upstream; send FIN to the client after the bytes already
        sent, and drain what the client sent so the close is not an RST that
        could discard those bytes."""
        with contextlib.suppress(OSError):
            conn.upstream.close()
        c = conn.client
        with contextlib.suppress(OSError):
            c.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            c.setblocking(False)
            while c.recv(65536):
                pass
