#!/usr/bin/env python3
"""fake_imap.py - a scripted IMAP server for fault tests (python3 stdlib).

    fake_imap.py --port-file FILE --log FILE --mode MODE

Speaks just enough IMAP4rev1 for dmarcwatch to log in, select INBOX and
list one message, then misbehaves according to MODE:
  cut-literal   announce a 100000-byte body literal, send 100 bytes, close
  no-select     answer SELECT with NO
  stall         announce a 100000-byte body literal, send 100 bytes, then
                send nothing more and keep the connection open
Every line received is appended to --log (so tests can assert the command
sequence). One connection at a time; serves until killed.
"""
import argparse, os, socket, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", default="cut-literal")
    a = ap.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(tmp, a.port_file)
    log = open(a.log, "a", buffering=1)
    while True:
        c, _ = srv.accept()
        f = c.makefile("rb")
        def send(s):
            c.sendall(s.encode() if isinstance(s, str) else s)
        send("* OK [CAPABILITY IMAP4rev1 UIDPLUS MOVE] fake ready\r\n")
        try:
            for raw in f:
                line = raw.decode(errors="replace").rstrip("\r\n")
                log.write(line + "\n")
                tag, _, rest = line.partition(" ")
                cmd = rest.split(" ")[0].upper()
                if cmd == "CAPABILITY":
                    send("* CAPABILITY IMAP4rev1 UIDPLUS MOVE\r\n%s OK done\r\n" % tag)
                elif cmd == "LOGIN":
                    send("%s OK logged in\r\n" % tag)
                elif cmd == "LIST":
                    send('* LIST () "/" ""\r\n%s OK done\r\n' % tag)
                elif cmd == "SELECT":
                    if a.mode == "no-select":
                        send("%s NO no such mailbox\r\n" % tag)
                    else:
                        send("* 1 EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n* OK [UIDNEXT 2] ok\r\n"
                             "%s OK [READ-WRITE] selected\r\n" % tag)
                elif cmd == "UID" and "BODY.PEEK" in rest.upper():
                    send("* 1 FETCH (UID 1 BODY[] {100000}\r\n" + "x" * 100)
                    if a.mode == "stall":
                        while True:
                            time.sleep(3600)
                    break
                elif cmd == "UID":
                    send('* 1 FETCH (UID 1 RFC822.SIZE 100000 INTERNALDATE "01-Jan-2024 00:00:00 +0000")\r\n'
                         "%s OK done\r\n" % tag)
                elif cmd == "LOGOUT":
                    send("* BYE\r\n%s OK bye\r\n" % tag)
                    break
                else:
                    send("%s OK\r\n" % tag)
        except OSError:
            pass
        # The makefile() object keeps the socket open: shut it down for real
        # so the client sees the end of the stream at once.
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        f.close()
        c.close()

main()
