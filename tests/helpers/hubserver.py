"""A real HTTP server on 127.0.0.1 that answers the Hugging Face hub's file endpoints, for hub tests.

``HEAD``/``GET /{owner}/{name}/resolve/{revision}/{file}`` (model repos) and
``/spaces/{owner}/{name}/resolve/{revision}/{file}`` (spaces), with the headers huggingface_hub needs
(``X-Repo-Commit``, ``ETag``, ``Content-Length``) and byte ranges (``Range: bytes=N-`` → 206, used to resume).
Unknown paths get 404 with ``X-Error-Code: EntryNotFound`` as the hub sends. Faults on demand: ``drop``
(send the headers and half the body, then close the connection; while ``drop`` lasts, a resumed request
gets 503) and ``slow`` (pace the body so that two
clients overlap).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_PATH = re.compile(r"^/(?P<space>spaces/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[0-9a-f]{40})/(?P<file>.+)$")


@dataclass
class HubServer:
    """``files[(repo_type, repo_id, revision, filename)] = bytes``; ``url`` is the HF_ENDPOINT."""

    files: dict[tuple[str, str, str, str], bytes] = field(default_factory=dict)
    #: number of GETs still to answer by dropping the connection mid-body (-1: all)
    drop: int = 0
    #: seconds between 64 KiB chunks of a body
    slow: float = 0.0
    #: (method, path, Range header, User-Agent) of every request
    log: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def start(self) -> HubServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _lookup(self) -> bytes | None:
                server.log.append(
                    (self.command, self.path, self.headers.get("Range"), self.headers.get("User-Agent", ""))
                )
                m = _PATH.match(self.path.split("?")[0])
                if not m:
                    return None
                kind = "space" if m["space"] else "model"
                return server.files.get((kind, m["repo"], m["rev"], m["file"]))

            def _not_found(self) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("X-Error-Message", "Entry not found")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _headers(self, data: bytes, status: int, start: int) -> None:
                import hashlib

                self.send_response(status)
                m = _PATH.match(self.path.split("?")[0])
                assert m is not None
                self.send_header("X-Repo-Commit", m["rev"])
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("Content-Length", str(len(data) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()

            def do_HEAD(self) -> None:  # noqa: N802
                data = self._lookup()
                if data is None:
                    return self._not_found()
                self._headers(data, 200, 0)

            def do_GET(self) -> None:  # noqa: N802
                data = self._lookup()
                if data is None:
                    return self._not_found()
                start = 0
                rng = self.headers.get("Range")
                if rng and (m := re.match(r"bytes=(\d+)-$", rng)):
                    start = int(m.group(1))
                if server.drop != 0 and start:  # a resume while the "network" is still bad
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._headers(data, 206 if start else 200, start)
                body = data[start:]
                if server.drop != 0:
                    server.drop -= 1 if server.drop > 0 else 0
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                for i in range(0, len(body), 1 << 16):
                    self.wfile.write(body[i : i + (1 << 16)])
                    if server.slow:
                        time.sleep(server.slow)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def gets(self, filename: str) -> int:
        return sum(1 for method, path, _, _ in self.log if method == "GET" and path.endswith("/" + filename))

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
