"""A webhook receiver on loopback for the webhook tests: every POST is kept as a JSON
file in DIR (path, the Veche-* headers, the body as sent). /flaky answers 503 to the
first two attempts of each delivery, /down always 500, any other path 200.

usage: webhook_receiver.py PORT DIR   (prints "ready" once listening; runs until stdin closes)
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, folder = int(sys.argv[1]), sys.argv[2]
os.makedirs(folder, exist_ok=True)
attempts = {}
lock = threading.Lock()


class Receive(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        delivery = self.headers.get("Veche-Delivery", "")
        with lock:
            attempts[delivery] = attempts.get(delivery, 0) + 1
            seen = attempts[delivery]
        record = {
            "path": self.path,
            "signature": self.headers.get("Veche-Signature"),
            "delivery": delivery,
            "event": self.headers.get("Veche-Event"),
            "content_type": self.headers.get("Content-Type"),
            "body": body,
        }
        name = f"{time.time_ns()}.json"
        with open(os.path.join(folder, "." + name), "w") as f:
            json.dump(record, f)
        os.rename(os.path.join(folder, "." + name), os.path.join(folder, name))
        status = 200
        if self.path == "/down" or (self.path == "/flaky" and seen <= 2):
            status = 500 if self.path == "/down" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Receive)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
sys.stdin.read()
server.shutdown()
