#!/usr/bin/env python3
"""oauth_server.py - a fake OAuth2 provider for the integration tests.

One process serves both sides of XOAUTH2 on 127.0.0.1 (python3 stdlib only):

  * the token endpoint the agent refreshes at (RFC 6749 section 6):
        POST /token  grant_type=refresh_token&client_id=..&client_secret=..
                     &refresh_token=..
    -> {"access_token": "dwtest-at-N-RANDOM", "expires_in": LIFETIME,
        "token_type": "Bearer", "scope": "https://mail.google.com/"}
    with Google's error replies: 400 invalid_grant (wrong or revoked refresh
    token), 401 invalid_client (wrong client id or secret), 400
    unsupported_grant_type;

  * the token validation Dovecot's oauth2 passdb calls, in every mode
    Dovecot 2.3 has (see tests/integration/dovecot-oauth2.conf.in):
        POST /introspect  token=TOKEN              introspection_mode = post
        GET  /introspect?token=TOKEN               introspection_mode = get
        GET  /introspect  Authorization: Bearer T  introspection_mode = auth
        GET  /tokeninfo?access_token=TOKEN         tokeninfo_url
    A token is valid only if this server issued it, it is not past its
    lifetime and it was not revoked. Valid: 200 {"active": true, "username":
    USER, "email": USER, "scope": ..., "exp": ..., "expires_in": ...}.
    Invalid: introspection (every mode) answers 200 {"active": false}
    (RFC 7662); tokeninfo answers 401 {"error": "invalid_token"}, as
    Google's does. Dovecot turns both into [AUTHENTICATIONFAILED].

Test control (POST, no body needed):
    /admin/revoke-access     every access token issued so far becomes invalid
                             (the agent must notice the AUTHENTICATE failure,
                             refresh with force and retry)
    /admin/revoke-refresh    the refresh token is revoked: /token answers
                             invalid_grant from now on
    /admin/restore-refresh   undo revoke-refresh
    /admin/fail?status=503&count=2
                             the next COUNT /token requests answer STATUS
                             (500-599: an error page; 0: close the connection
                             without answering; -1: hang until the client
                             gives up)
    /admin/lifetime?seconds=N  lifetime of tokens issued from now on
    GET /admin/state         JSON: issued tokens, refresh count, ...

Every request is appended to --log as one JSON object per line:
    {"t": 1700000000.123, "endpoint": "token", "result": "issued",
     "token": "dwtest-at-1-...", "expires_in": 3600}
    {"t": ..., "endpoint": "introspect", "mode": "post", "token": "...",
     "active": true}
so a test can count refreshes (grep -c '"result": "issued"') and check which
token Dovecot saw. Tokens here are test values, so logging them is fine.

Usage:
    oauth_server.py --port-file FILE [--port 0] [--log FILE] [--user reports]
        [--client-id ID] [--client-secret S] [--refresh-token RT]
        [--lifetime 3600]
The chosen port is written to --port-file (atomically, once listening) and
printed on stdout. Stop it with SIGTERM.
"""

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SCOPE = "https://mail.google.com/"


class State:
    """Everything the handlers share, behind one lock."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.args = args
        self.lifetime = args.lifetime
        self.tokens = {}  # access token -> {"expires": epoch, "revoked": bool}
        self.counter = 0
        self.refresh_revoked = False
        self.fail_status = None
        self.fail_count = 0
        self.log_fh = open(args.log, "a", buffering=1) if args.log else None

    def log(self, **entry):
        entry = dict(t=round(time.time(), 3), **entry)
        if self.log_fh is not None:
            with self.lock:
                self.log_fh.write(json.dumps(entry, sort_keys=True) + "\n")

    def issue(self):
        with self.lock:
            self.counter += 1
            token = "dwtest-at-%d-%s" % (self.counter, secrets.token_urlsafe(12))
            self.tokens[token] = {"expires": time.time() + self.lifetime, "revoked": False}
            return token, self.lifetime

    def check(self, token):
        """(valid, seconds left) for an access token."""
        with self.lock:
            info = self.tokens.get(token)
            if info is None or info["revoked"]:
                return False, 0
            left = info["expires"] - time.time()
            return left > 0, max(0, int(left))

    def take_failure(self):
        with self.lock:
            if self.fail_count > 0:
                self.fail_count -= 1
                return self.fail_status
            return None


class Handler(BaseHTTPRequestHandler):
    server_version = "dwtest-oauth/1"
    state = None  # set in main()

    # -- plumbing -------------------------------------------------------
    def log_message(self, fmt, *args):  # keep stderr quiet
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def form(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace") if n > 0 else ""
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw, keep_blank_values=True).items()}

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        return url.path.rstrip("/") or "/", query

    # -- endpoints ------------------------------------------------------
    def do_POST(self):
        path, query = self.route()
        if path == "/token":
            return self.token(self.form())
        if path == "/introspect":
            form = self.form()
            return self.validate("post", form.get("token", ""), introspection=True)
        if path.startswith("/admin/"):
            return self.admin(path, query)
        self.reply(404, {"error": "not_found"})

    def do_GET(self):
        path, query = self.route()
        if path == "/introspect":
            auth = self.headers.get("Authorization", "")
            if auth.lower().startswith("bearer "):
                return self.validate("auth", auth[7:].strip(), introspection=True)
            return self.validate("get", query.get("token", ""), introspection=True)
        if path == "/tokeninfo":
            return self.validate("tokeninfo", query.get("access_token", query.get("token", "")),
                                 introspection=False)
        if path == "/admin/state":
            st = self.state
            with st.lock:
                obj = {
                    "issued": st.counter,
                    "lifetime": st.lifetime,
                    "refresh_revoked": st.refresh_revoked,
                    "tokens": {t: {"expires": i["expires"], "revoked": i["revoked"]}
                               for t, i in st.tokens.items()},
                }
            return self.reply(200, obj)
        self.reply(404, {"error": "not_found"})

    def token(self, form):
        st = self.state
        a = st.args
        fail = st.take_failure()
        if fail is not None:
            st.log(endpoint="token", result="scripted-failure", status=fail)
            if fail == 0:
                self.close_connection = True
                return
            if fail < 0:
                time.sleep(3600)
                return
            body = b"<html><body>temporarily broken</body></html>"
            self.send_response(fail)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            st.log(endpoint="token", result="bad-content-type", content_type=ctype)
            return self.reply(400, {"error": "invalid_request",
                                    "error_description": "form encoding expected"})
        if form.get("grant_type") != "refresh_token":
            st.log(endpoint="token", result="unsupported_grant_type", grant_type=form.get("grant_type"))
            return self.reply(400, {"error": "unsupported_grant_type",
                                    "error_description": "Invalid grant_type: %s" % form.get("grant_type")})
        if form.get("client_id") != a.client_id or form.get("client_secret", "") != a.client_secret:
            st.log(endpoint="token", result="invalid_client")
            return self.reply(401, {"error": "invalid_client", "error_description": "Unauthorized"})
        if form.get("refresh_token") != a.refresh_token or st.refresh_revoked:
            st.log(endpoint="token", result="invalid_grant")
            return self.reply(400, {"error": "invalid_grant",
                                    "error_description": "Token has been expired or revoked."})
        token, lifetime = st.issue()
        st.log(endpoint="token", result="issued", token=token, expires_in=lifetime)
        self.reply(200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer",
                         "scope": SCOPE})

    def validate(self, mode, token, introspection):
        st = self.state
        valid, left = st.check(token)
        st.log(endpoint="introspect" if introspection else "tokeninfo", mode=mode, token=token,
               active=valid)
        if valid:
            return self.reply(200, {"active": True, "username": st.args.user, "email": st.args.user,
                                    "scope": SCOPE, "client_id": st.args.client_id,
                                    "token_type": "Bearer", "exp": int(time.time()) + left,
                                    "expires_in": left})
        # Dovecot 2.3 reads a 4xx introspection reply as "no username" and
        # reports a temporary failure, so introspection always answers 200.
        if introspection:
            return self.reply(200, {"active": False})
        self.reply(401, {"error": "invalid_token", "error_description": "Invalid Credentials"})

    def admin(self, path, query):
        st = self.state
        with st.lock:
            if path == "/admin/revoke-access":
                for info in st.tokens.values():
                    info["revoked"] = True
            elif path == "/admin/revoke-refresh":
                st.refresh_revoked = True
            elif path == "/admin/restore-refresh":
                st.refresh_revoked = False
            elif path == "/admin/fail":
                st.fail_status = int(query.get("status", "500"))
                st.fail_count = int(query.get("count", "1"))
            elif path == "/admin/lifetime":
                st.lifetime = int(query.get("seconds", "3600"))
            else:
                path = None
        if path is None:
            return self.reply(404, {"error": "unknown admin command"})
        st.log(endpoint="admin", command=path[len("/admin/"):], query=query)
        self.reply(200, {"ok": True})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--log", default="")
    p.add_argument("--user", default="reports")
    p.add_argument("--client-id", default="dwtest-client.apps.example")
    p.add_argument("--client-secret", default="dwtest-client-secret")
    p.add_argument("--refresh-token", default="dwtest-refresh-token")
    p.add_argument("--lifetime", type=int, default=3600)
    args = p.parse_args()

    Handler.state = State(args)
    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = httpd.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("%d\n" % port)
    os.rename(tmp, args.port_file)
    print(port, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
