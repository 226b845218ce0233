"""A tiny engine stand-in run inside test containers with `python3 -c` (standard library only).

It behaves like an engine at the edges the supervisor cares about: it refuses connections while
"loading" (TEST_LOAD_SECONDS), then answers GET /health with 200, and it can crash, exit at once
or never become ready (TEST_FAULT=crash-after=S | exit-on-start | never-ready).
"""

import http.server
import os
import sys
import threading
import time

load = float(os.environ.get("TEST_LOAD_SECONDS", "0"))
fault = os.environ.get("TEST_FAULT", "")
port = int(os.environ.get("TEST_PORT", "8000"))
print(f"starting on port {port}, loading for {load}s", flush=True)
if fault == "exit-on-start":
    print("fatal: cannot load the model (simulated)", flush=True)
    sys.exit(3)
time.sleep(load)
if fault.startswith("crash-after="):
    delay = float(fault.split("=", 1)[1])

    def crash() -> None:
        time.sleep(delay)
        print("fatal: engine core died (simulated)", flush=True)
        os._exit(1)

    threading.Thread(target=crash, daemon=True).start()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ready = fault != "never-ready"
        self.send_response(200 if ready else 503)
        self.end_headers()
        self.wfile.write(b"ok" if ready else b"starting")

    def log_message(self, *args: object) -> None:
        pass


print("ready", flush=True)
http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
