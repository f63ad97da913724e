#!/usr/bin/python3
"""A real SMTP server (aiosmtpd) for the e-mail notifier's tests.

Listens on 127.0.0.1, port 0 (the kernel picks a free one), and writes the
port to --port-file once it accepts connections. Modes (--tls):

  starttls  plain connection that offers STARTTLS and requires it before
            anything but EHLO/NOOP/QUIT (RFC 3207); AUTH only after it
  implicit  TLS from the first byte (smtps, port 465 style)
  none      no TLS at all: no STARTTLS in the EHLO answer, AUTH in clear

With --user/--password, AUTH (PLAIN or LOGIN) is required before MAIL.
Each accepted message is written to OUT/msg-N.eml (the DATA bytes as
received) and OUT/msg-N.json (envelope: mail_from, rcpt_tos, the
authenticated user, whether the session was encrypted), atomically, so a
reader never sees half a file. Events (every AUTH, refused RCPT and
DATA) are appended to OUT/events.log.

Scripted failures: --rcpt-reply 'ADDR=550 5.1.1 no such user' answers RCPT
TO for ADDR with that line; --data-reply '451 4.3.0 try later' answers
every DATA (after the message) with it.

Run with /usr/bin/python3: aiosmtpd is Debian's python3-aiosmtpd.
"""
import argparse
import asyncio
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    def __init__(self, out, rcpt_replies, data_reply):
        self.out = out
        self.n = 0
        self.rcpt_replies = rcpt_replies
        self.data_reply = data_reply

    def _write(self, name, data):
        tmp = os.path.join(self.out, "." + name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.out, name))

    def event(self, line):
        with open(os.path.join(self.out, "events.log"), "a") as f:
            f.write(line + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            self.event("rcpt-refused " + address)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply is not None:
            self.event("data-refused")
            return self.data_reply
        self.n += 1
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": session.auth_data.login.decode("utf-8", "replace")
            if isinstance(session.auth_data, LoginPassword) else None,
            "encrypted": session.ssl is not None or server.implicit_tls,
        }
        content = envelope.original_content
        self._write("msg-%d.eml" % self.n, content)
        self._write("msg-%d.json" % self.n, json.dumps(meta).encode())
        return "250 2.0.0 OK queued as %d" % self.n


class Server(SMTP):
    implicit_tls = False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--rcpt-reply", action="append", default=[])
    ap.add_argument("--data-reply")
    a = ap.parse_args()

    logging.basicConfig(level=logging.CRITICAL)
    warnings.simplefilter("ignore")
    os.makedirs(a.out, exist_ok=True)

    ctx = None
    if a.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    rcpt = {}
    for r in a.rcpt_reply:
        addr, _, line = r.partition("=")
        rcpt[addr.lower()] = line
    rec = Recorder(a.out, rcpt, a.data_reply)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == a.user.encode()
              and auth_data.password == a.password.encode())
        login = auth_data.login.decode("utf-8", "replace") if isinstance(auth_data, LoginPassword) else "?"
        rec.event("auth-%s %s %s" % ("ok" if ok else "failed", mechanism, login))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def factory():
        kw = {}
        if a.user is not None:
            kw.update(auth_required=True, authenticator=authenticator)
        if a.tls == "starttls":
            kw.update(tls_context=ctx, require_starttls=True, auth_require_tls=True)
        else:
            # implicit TLS: aiosmtpd only knows about STARTTLS, so it must be
            # told AUTH is fine; "none" is the plaintext-server case.
            kw.update(auth_require_tls=False)
        s = Server(rec, hostname="smtp.test", **kw)
        s.implicit_tls = a.tls == "implicit"
        return s

    async def serve():
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(factory, "127.0.0.1", 0,
                                       ssl=ctx if a.tls == "implicit" else None)
        port = srv.sockets[0].getsockname()[1]
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, a.port_file)
        async with srv:
            await srv.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
