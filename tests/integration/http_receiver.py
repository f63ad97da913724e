#!/usr/bin/env python3
"""http_receiver.py - a recording HTTP server with scripted answers, for the
integration tests of the HTTP notifiers (slack, webhook). Python 3 stdlib.

It listens on 127.0.0.1 (port 0 by default: the kernel picks a free one),
writes the port to --port-file once listening (atomically) and serves each
request in its own thread, so one request left hanging does not hold up the
next.

Recording: request number N (1, 2, ... in arrival order) is stored as
    DIR/N.body   the body, raw bytes (chunked bodies are de-chunked)
    DIR/N.json   {"n": N, "t": UNIX-TIME-FLOAT (when its headers arrived),
                  "method": "POST", "path": "/services/T/B/X", "query": "a=b",
                  "headers": {"content-type": "...", ...}  (names lowercased;
                      a repeated header's values joined with ", "),
                  "body_len": 123, "body_file": "N.body",
                  "rule": index of the script rule that answered, or null,
                  "answer": "status 200" | "hang" | "close"}
written (atomically) once the body is read and before the answer goes out,
and the same object appended as one line to DIR/requests.jsonl. A test waits
for DIR/N.json to exist, then reads it.

Script (--script FILE, JSON; re-read whenever the file changes, which
resets the counts):
    {"rules": [
        {"method": "POST", "path": "/services/*", "times": 1,
         "status": 429, "headers": {"Retry-After": "2"}, "body": "slow down"},
        {"path": "/api/files.getUploadURLExternal",
         "json": {"ok": true, "upload_url": "{base}/upload/F1", "file_id": "F1"}},
        {"path": "/hook", "times": 1, "hang": 10},
        {"path": "/drop", "close": true}
     ],
     "default": {"status": 200, "body": "ok"}}
A request gets the first rule whose "method" (exact) and "path" (fnmatch
pattern on the path without the query) match, among the rules with "times"
left (absent: unlimited); else "default" (absent: 200 "ok"). Answer keys:
    status   HTTP status (200)
    headers  extra response headers
    body     text body (Content-Type text/plain unless given in headers)
    json     any JSON value, sent as application/json
    delay    seconds to wait before answering
    hang     seconds to hold the connection without answering, then close
             it (ends early when the client gives up)
    close    close the connection at once, without answering
In body, json strings and header values "{base}" becomes
http://127.0.0.1:PORT (https:// with --tls-cert), "{port}" the port and
"{n}" the request number.

TLS: with --tls-cert CERT.pem --tls-key KEY.pem it serves HTTPS instead
(for tests of ca_file / verify; make the certificate for IP 127.0.0.1).

Usage:
    http_receiver.py --port-file FILE --dir DIR [--script FILE] [--port 0]
                     [--tls-cert PEM --tls-key PEM]
Stop it with SIGTERM.
"""

import argparse
import fnmatch
import http.server
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


class Script:
    """The rules, their remaining counts, reloaded when the file changes."""

    def __init__(self, path):
        self.path = path
        self.mtime = None
        self.rules = []
        self.left = []
        self.default = {"status": 200, "body": "ok"}
        self.lock = threading.Lock()

    def _load(self):
        if self.path is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self.mtime:
            return
        with open(self.path, encoding="utf-8") as f:
            doc = json.load(f)
        self.mtime = stamp
        self.rules = doc.get("rules", [])
        self.left = [r.get("times") for r in self.rules]
        self.default = doc.get("default", {"status": 200, "body": "ok"})

    def pick(self, method, path):
        """(rule index or None, answer dict), consuming one use of the rule."""
        with self.lock:
            self._load()
            for i, r in enumerate(self.rules):
                if "method" in r and r["method"] != method:
                    continue
                if "path" in r and not fnmatch.fnmatchcase(path, r["path"]):
                    continue
                if self.left[i] is not None:
                    if self.left[i] <= 0:
                        continue
                    self.left[i] -= 1
                return i, r
            return None, self.default


def expand(value, subst):
    if isinstance(value, str):
        for k, v in subst.items():
            value = value.replace(k, v)
        return value
    if isinstance(value, list):
        return [expand(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: expand(v, subst) for k, v in value.items()}
    return value


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http_receiver/1"

    def log_message(self, fmt, *args):  # quiet: the records are the log
        pass

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0") or "0")
        return self.rfile.read(n) if n > 0 else b""

    def _hang(self, seconds):
        """Hold the connection, answering nothing, until seconds pass or
        the client closes it."""
        end = time.monotonic() + seconds
        conn = self.connection
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([conn], [], [], min(left, 0.2))
            if r:
                try:
                    if conn.recv(1, socket.MSG_PEEK) == b"":
                        return
                except OSError:
                    return
                time.sleep(min(left, 0.05))

    def _handle(self):
        t = time.time()
        body = self._read_body()
        srv = self.server
        with srv.count_lock:
            srv.count += 1
            n = srv.count
        path, _, query = self.path.partition("?")
        idx, rule = srv.script.pick(self.command, path)
        if rule.get("close"):
            answer = "close"
        elif rule.get("hang"):
            answer = "hang"
        else:
            answer = "status %d" % int(rule.get("status", 200))
        headers = {}
        for k, v in self.headers.items():
            k = k.lower()
            headers[k] = headers[k] + ", " + v if k in headers else v
        rec = {"n": n, "t": t, "method": self.command, "path": path, "query": query,
               "headers": headers, "body_len": len(body), "body_file": "%d.body" % n,
               "rule": idx, "answer": answer}
        write_atomic(os.path.join(srv.dir, "%d.body" % n), body)
        line = json.dumps(rec, sort_keys=True)
        with srv.count_lock:
            with open(os.path.join(srv.dir, "requests.jsonl"), "a", encoding="utf-8") as f:
                f.write(line + "\n")
        write_atomic(os.path.join(srv.dir, "%d.json" % n), (line + "\n").encode())

        if answer == "close":
            self.close_connection = True
            return
        if answer == "hang":
            self._hang(float(rule["hang"]))
            self.close_connection = True
            return
        if rule.get("delay"):
            time.sleep(float(rule["delay"]))
        subst = {"{base}": "%s://127.0.0.1:%d" % (srv.scheme, srv.port), "{port}": str(srv.port), "{n}": str(n)}
        extra = expand(rule.get("headers", {}), subst)
        if "json" in rule:
            data = json.dumps(expand(rule["json"], subst)).encode()
            ctype = "application/json"
        else:
            data = expand(rule.get("body", ""), subst).encode()
            ctype = "text/plain; charset=utf-8"
        self.send_response(int(rule.get("status", 200)))
        if not any(k.lower() == "content-type" for k in extra):
            self.send_header("Content-Type", ctype)
        for k, v in extra.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client refusing our certificate or hanging up is a test case,
        # not a receiver error: no traceback.
        if isinstance(sys.exc_info()[1], (ssl.SSLError, ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--dir", required=True, help="where requests are recorded")
    ap.add_argument("--script", help="JSON rules (see the module docstring)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="the certificate's private key (PEM)")
    a = ap.parse_args()

    os.makedirs(a.dir, exist_ok=True)
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.dir = a.dir
    srv.scheme = "http"
    if a.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.tls_cert, a.tls_key)
        # The handshake happens in the request's thread (not in accept), so
        # a client that fails it does not block the server.
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        srv.scheme = "https"
    srv.port = srv.server_address[1]
    srv.count = 0
    srv.count_lock = threading.Lock()
    srv.script = Script(a.script)
    with srv.script.lock:  # load now: a broken script fails at startup
        srv.script._load()

    signal.signal(signal.SIGTERM, lambda *_: (srv.server_close(), os._exit(0)))
    write_atomic(a.port_file, b"%d\n" % srv.port)
    print(srv.port, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
