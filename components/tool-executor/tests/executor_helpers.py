"""Shared by the executor's tests: a workspace with a secret outside it, a loopback web server.

Imported by name (``from executor_helpers import Workspace``): test folders are not
packages, and the root conftest puts each on ``sys.path``.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SECRET = "TOPSECRET-d41d8cd9"


class Workspace:
    """``root/ws`` is the workspace; ``root/outside`` holds a secret nothing may touch."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ws = base / "ws"
        self.outside = base / "outside"
        self.ws.mkdir()
        (self.ws / "sub").mkdir()
        (self.ws / "file.txt").write_text("one\ntwo\nthree\n", encoding="utf-8")
        self.outside.mkdir()
        (self.outside / "secret.txt").write_text(SECRET + "\n", encoding="utf-8")

    def snapshot(self) -> dict[str, tuple[int, int, bytes]]:
        """Everything under the base except the workspace: path → (mode, size, content)."""
        state: dict[str, tuple[int, int, bytes]] = {}
        for path in sorted(self.base.rglob("*")):
            if path == self.ws or self.ws in path.parents:
                continue
            info = path.lstat()
            content = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
            state[str(path)] = (info.st_mode, info.st_size, content)
        return state


class FakeWeb:
    """A loopback HTTP server; counts every request it gets, by path (and its Host header),
    and keeps each request's headers. ``trickle[path] = (body, delay)`` sends that body one
    byte every ``delay`` seconds (a slow server)."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.hits: list[str] = []
        self.host_headers: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.trickle: dict[str, tuple[bytes, float]] = {}
        web = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                web.hits.append(self.path)
                web.host_headers.append(self.headers.get("Host", ""))
                web.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path in web.trickle:
                    self._trickle(*web.trickle[self.path])
                    return
                status, headers, body = web.routes.get(self.path, (200, {}, b"hello from fake"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _trickle(self, body: bytes, delay: float) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for index in range(len(body)):
                        self.wfile.write(body[index : index + 1])
                        self.wfile.flush()
                        time.sleep(delay)
                except OSError:
                    return  # the client gave up

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://{self.address}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
