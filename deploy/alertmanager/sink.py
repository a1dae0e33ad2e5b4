"""The compose stack's stand-in for a paging and a ticketing gateway: Alertmanager's
webhooks POST here, and every notification is printed as one JSON line (`docker compose
logs alert-sink`) and kept for GET /received. Standard library only.

    python sink.py [--port 8080]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RECEIVED: list[dict[str, Any]] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self.send_error(400, "not JSON")
            return
        entry = {"path": self.path, "notification": body}
        with LOCK:
            RECEIVED.append(entry)
        print(json.dumps(entry, ensure_ascii=False), flush=True)
        self.send_response(200)
        self.end_headers()

    def do_GET(self) -> None:
        if self.path == "/healthz":
            payload = b"ok"
        elif self.path == "/received":
            with LOCK:
                payload = json.dumps(RECEIVED, ensure_ascii=False).encode()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the notification lines are the log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"alert-sink listening on {args.host}:{server.server_port}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
