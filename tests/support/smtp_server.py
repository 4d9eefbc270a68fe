#!/usr/bin/env python3
"""A real SMTP server for alertkit's email tests (aiosmtpd), on 127.0.0.1.

Modes: plain (no TLS), starttls (offers STARTTLS), implicit (TLS from the
first byte). Optional AUTH (PLAIN and LOGIN) with one user; recipients can
be refused (550) or deferred (450). Each accepted message is written to
OUT/N.eml with OUT/N.json (envelope, auth user, whether TLS was on); every
AUTH attempt is appended to OUT/auth.log. Prints "PORT <n>" when ready and
serves until stdin closes (the test process ended) or it is killed.
"""
import argparse
import json
import os
import socket
import ssl
import sys
import threading
import warnings

# aiosmtpd warns about test set-ups (AUTH without its own TLS on an
# implicit-TLS listener); the tests choose them on purpose.
warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.getLogger("mail.log").setLevel(logging.ERROR)

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


a_mode = "plain"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Handler:
    def __init__(self, out, reject, defer):
        self.out, self.reject, self.defer = out, set(reject), set(defer)
        self.n = 0
        self.lock = threading.Lock()

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        with open(os.path.join(self.out, "ehlo.log"), "a") as f:
            f.write("%s tls=%s\n" % (hostname, session.ssl is not None or a_mode == "implicit"))
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.reject:
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
        if address in self.defer:
            return "450 4.2.1 <%s>: Mailbox busy, try later" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.n += 1
            n = self.n
        with open(os.path.join(self.out, "%d.eml" % n), "wb") as f:
            f.write(envelope.original_content or envelope.content)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": session.ssl is not None or a_mode == "implicit",
        }
        with open(os.path.join(self.out, "%d.json" % n), "w") as f:
            json.dump(meta, f)
        return "250 2.0.0 Ok: queued as M%d" % n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--reject", action="append", default=[])
    ap.add_argument("--defer", action="append", default=[])
    ap.add_argument("--only-mech", help="advertise only this AUTH mechanism")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    global a_mode
    a_mode = a.mode

    auth_log = os.path.join(a.out, "auth.log")

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == a.user
            and auth_data.password.decode() == a.password
        )
        with open(auth_log, "a") as f:
            f.write("%s %s tls=%s ok=%s\n" % (mechanism, auth_data.login.decode(),
                                                session.ssl is not None or a.mode == "implicit", ok))
        return AuthResult(success=ok, handled=False)

    ctx = None
    if a.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)

    kwargs = dict(hostname="127.0.0.1", port=free_port())
    server_kwargs = {}
    if a.user:
        # aiosmtpd only knows of TLS it negotiated itself (STARTTLS): on an
        # implicit-TLS listener every session is encrypted already.
        server_kwargs.update(authenticator=authenticator, auth_required=True,
                             auth_require_tls=(a.mode == "starttls"))
        if a.only_mech:
            server_kwargs["auth_exclude_mechanism"] = [m for m in ("PLAIN", "LOGIN") if m != a.only_mech]
    if a.mode == "starttls":
        server_kwargs.update(tls_context=ctx, require_starttls=True)
    if a.mode == "implicit":
        kwargs["ssl_context"] = ctx
    controller = Controller(Handler(a.out, a.reject, a.defer), server_kwargs=server_kwargs, **kwargs)
    controller.start()
    print("PORT %d" % controller.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
