"""A TCP proxy on 127.0.0.1 in front of a test server: stopping it makes the server unreachable.

The server keeps running (and keeps its data: moto's S3 server holds its
buckets in memory), while every connection through the proxy is cut and new
ones are refused, as when an endpoint goes away; starting the proxy again on
the same port brings the endpoint back.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["TcpProxy"]


class TcpProxy:
    """Relays connections from ``127.0.0.1:port`` to ``127.0.0.1:target_port``.

    Parameters
    ----------
    target_port : int
        The server's port.
    port : int
        The proxy's port (0: any free one; read :attr:`port` after :meth:`start`).
    cut_after : int, optional
        Stop by itself once this many requests holding ``marker`` have been
        relayed (the endpoint goes away in the middle of a run).
    marker : bytes
        What a counted request holds (default: a chunk or shard written, ``PUT`` of ``/c/``).
    """

    def __init__(
        self,
        target_port: int,
        *,
        port: int = 0,
        cut_after: int | None = None,
        marker: bytes = b"/c/",
    ):
        self.target_port = target_port
        self.port = port
        self.cut_after = cut_after
        self.marker = marker
        self.counted = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        """Listen (again) on :attr:`port` and relay every connection."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Refuse new connections and cut every open one."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by stop()
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for source, sink, requests in ((client, upstream, True), (upstream, client, False)):
                relay = threading.Thread(target=self._relay, args=(source, sink, requests))
                relay.daemon = True
                relay.start()

    def _relay(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        try:
            while data := source.recv(65536):
                if requests and self._counts(data):
                    self.stop()
                    return
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _counts(self, data: bytes) -> bool:
        """Whether this piece of a request is the one after which the proxy cuts the endpoint."""
        if self.cut_after is None or not data.startswith(b"PUT ") or self.marker not in data:
            return False
        with self._lock:
            self.counted += 1
            return self.counted > self.cut_after
