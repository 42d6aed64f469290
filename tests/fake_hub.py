"""A stand-in for the Hugging Face hub's HTTP API on 127.0.0.1, for hosted-mode tests of hub downloads.

It serves the three calls the lab makes (model info, the recursive file tree, and file downloads) for repositories
given as {path: bytes}, and records every request, so a test can tell whether anything was downloaded. The real
``huggingface_hub`` client talks to it (``HF_ENDPOINT``), so the client's own URL building and parsing are exercised.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, bytes]], sizes: dict[str, dict[str, int]] | None = None, delay_s: float = 0.0):
        self.repos = repos
        self.sizes = sizes or {}      # repo -> path -> size to announce (a "huge" file that is never served)
        self.delay_s = delay_s
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict | None = None, head: bool = False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)) if not (headers or {}).get("Content-Length") else headers["Content-Length"])
                self.end_headers()
                if not head and body:
                    self.wfile.write(body)

            def handle_any(self, head: bool):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                if hub.delay_s:
                    time.sleep(hub.delay_s)
                parts = path.strip("/").split("/")
                if parts[:2] == ["api", "models"]:
                    repo = "/".join(parts[2:4])
                    files = hub.repos.get(repo)
                    if files is None:
                        return self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"}, head)
                    rest = parts[4:]
                    if rest[:1] == ["revision"] or not rest:
                        body = json.dumps({"id": repo, "modelId": repo, "sha": SHA, "private": False,
                                           "siblings": [{"rfilename": p} for p in files]}).encode()
                        return self._send(200, body, {"Content-Type": "application/json"}, head)
                    if rest[:1] == ["tree"]:
                        entries = []
                        for p, blob in files.items():
                            size = hub.sizes.get(repo, {}).get(p, len(blob))
                            entries.append({"type": "file", "path": p, "size": size, "oid": hashlib.sha1(blob).hexdigest(),
                                            "lfs": {"oid": hashlib.sha256(blob).hexdigest(), "size": size, "pointerSize": 130}
                                            if p.endswith(".safetensors") else None})
                        return self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head)
                    return self._send(404, b"{}", {"Content-Type": "application/json"}, head)
                # /{org}/{name}/resolve/{revision}/{path...}
                if len(parts) >= 5 and parts[2] == "resolve":
                    repo, fname = "/".join(parts[:2]), "/".join(parts[4:])
                    blob = hub.repos.get(repo, {}).get(fname)
                    if blob is None:
                        return self._send(404, b"", {"X-Error-Code": "EntryNotFound"}, head)
                    etag = hashlib.sha256(blob).hexdigest() if fname.endswith(".safetensors") else hashlib.sha1(blob).hexdigest()
                    headers = {"X-Repo-Commit": SHA, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
                    if fname.endswith(".safetensors"):
                        headers["X-Linked-Etag"] = f'"{etag}"'
                        headers["X-Linked-Size"] = str(len(blob))
                    return self._send(200, blob, headers, head)
                return self._send(404, b"")

            def do_GET(self):
                self.handle_any(head=False)

            def do_HEAD(self):
                self.handle_any(head=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def downloads(self) -> list[str]:
        return [p for m, p in self.requests if m == "GET" and "/resolve/" in p]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
