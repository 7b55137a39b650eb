"""The demo workload's stand-in: GET / answers 200 on :8080 until SIGTERM."""

import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"demo workload\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the kubelet probes every few s
        pass


# PID 1 of a container gets no default action for SIGTERM: exit on it explicitly.
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ThreadingHTTPServer(("", 8080), Hello).serve_forever()
