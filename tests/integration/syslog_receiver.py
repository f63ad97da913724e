#!/usr/bin/env python3
"""A recording syslog receiver for the syslog notifier tests (stdlib only).

    syslog_receiver.py MODE OUTDIR [SOCKET]

MODE is one of
  unix   a unix datagram socket at SOCKET (one message per datagram)
  udp    UDP on 127.0.0.1, port 0 (one message per datagram)
  tcp    TCP on 127.0.0.1, port 0, RFC 6587 octet counting ("LEN SP MSG")

Each message is written, as received (without the TCP framing), to
OUTDIR/msg.N (N = 1, 2, ...; written to a temporary name, then renamed, so
a file that exists is complete). For udp and tcp the port goes to
OUTDIR/port; OUTDIR/ready appears once the socket is bound. A TCP frame that
is not valid octet counting is recorded in OUTDIR/errors (one line each) and
the connection is closed. Runs until killed.
"""
import os
import socket
import sys
import threading

mode, outdir = sys.argv[1], sys.argv[2]
count = 0
lock = threading.Lock()


def write_atomic(name, data):
    tmp = os.path.join(outdir, "." + name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, os.path.join(outdir, name))


def record(data):
    global count
    with lock:
        count += 1
        write_atomic("msg.%d" % count, data)


def error(text):
    with lock:
        with open(os.path.join(outdir, "errors"), "a") as f:
            f.write(text + "\n")


def read_exact(conn, buf, n):
    while len(buf) < n:
        chunk = conn.recv(65536)
        if not chunk:
            return None, buf
        buf += chunk
    return buf[:n], buf[n:]


def tcp_session(conn):
    buf = b""
    with conn:
        while True:
            # MSG-LEN = NONZERO-DIGIT *DIGIT, then one space
            while b" " not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    if buf:
                        error("connection closed inside a frame header: %r" % buf[:40])
                    return
                buf += chunk
                if len(buf) > 12 and b" " not in buf[:12]:
                    error("no octet count: %r" % buf[:40])
                    return
            head, buf = buf.split(b" ", 1)
            if not head.isdigit() or head.startswith(b"0"):
                error("bad octet count %r" % head[:40])
                return
            msg, buf = read_exact(conn, buf, int(head))
            if msg is None:
                error("connection closed after %d of %d octets" % (len(buf), int(head)))
                return
            record(msg)


def main():
    if mode == "unix":
        path = sys.argv[3]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
    elif mode == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
    elif mode == "tcp":
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
    else:
        sys.exit("usage: syslog_receiver.py unix|udp|tcp OUTDIR [SOCKET]")
    if mode != "unix":
        write_atomic("port", b"%d" % s.getsockname()[1])
    write_atomic("ready", b"")
    if mode == "tcp":
        while True:
            conn, _ = s.accept()
            threading.Thread(target=tcp_session, args=(conn,), daemon=True).start()
    while True:
        record(s.recv(65536))


main()
