"""Scripted loopback HTTP servers for the credential tests: `Server` answers every GET with a
function of the request and records what reached it (its path and headers), so a test can show
which credentials went where; LOGIN, PASSWORD and CLIENT_ID are the credentials those tests send."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOGIN, PASSWORD, CLIENT_ID = "acme+pubKEY77", "privSECRET-9f3", "client-id-5b1e"

Answer = Callable[[BaseHTTPRequestHandler], tuple[int, dict[str, str], bytes]]


class Server:
    """A loopback HTTP server answering every GET with `answer`, recording what reached it."""

    def __init__(self, answer: Answer) -> None:
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.seen.append({"path": self.path, **{k: v for k, v in self.headers.items()}})
                status, headers, body = answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # shutdown() waits out serve_forever's poll: at the default 0.5 s, half a second a test.
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
