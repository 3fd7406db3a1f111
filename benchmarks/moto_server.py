"""moto's S3 server on 127.0.0.1 for the object-storage benchmarks (no account needed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

__all__ = ["start_server"]

SERVER = """
import sys, time
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
time.sleep(3600)  # stops by itself if the benchmark dies without stopping it
"""


def start_server() -> tuple[subprocess.Popen, str]:
    """Start moto's server on a free port; ``(its process, its endpoint URL)`` once it answers.

    The caller kills the process when done.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto's server did not start")
