#!/usr/bin/env python3
"""Smoke test of the Postfix + Dovecot instance started by scripts/postfix-it.sh.

Usage: check.py DIR/env        (stdlib only; exits 1 on any failure)

Checks, against 127.0.0.1 only:
  plain port      no STARTTLS / AUTH offered, relay to ops@ accepted and delivered
  submission      AUTH not offered before STARTTLS, MAIL before STARTTLS -> 530,
                  STARTTLS verified against the test CA (IP 127.0.0.1 and name localhost),
                  AUTH PLAIN, wrong password -> 535, no AUTH -> refused, send to ops@ + lead@
  smtps           implicit TLS verified against the CA, AUTH LOGIN, send to a@
  recipients      reject@ -> 550, grey@ -> 450, unknown@ -> 550, partial send (b@ ok, reject@ refused)
  wrong host      both wrong-host ports fail verification for 127.0.0.1 / localhost,
                  and verify for wrong.example
  conn limit      12 concurrent connections: 10 greeted with 220, the rest with 421
  Maildir         every accepted message arrives in DIR/mail/example.test/<user>/new
"""
import json
import os
import smtplib
import socket
import ssl
import sys
import time
import uuid
from email.message import EmailMessage

FAILURES = []


def ok(name, detail=""):
    print(f"ok   {name}" + (f": {detail}" if detail else ""))


def fail(name, detail):
    FAILURES.append(name)
    print(f"FAIL {name}: {detail}")


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


def maildir_count(env, local):
    root = os.path.join(env["POSTFIX_IT_MAIL_ROOT"], env["POSTFIX_IT_DOMAIN"], local)
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(root, sub)))
        except FileNotFoundError:
            pass
    return n


def maildir_contains(env, local, token):
    root = os.path.join(env["POSTFIX_IT_MAIL_ROOT"], env["POSTFIX_IT_DOMAIN"], local)
    for sub in ("new", "cur"):
        d = os.path.join(root, sub)
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                if token.encode() in f.read():
                    return True
    return False


def message(sender, to, token, cc=()):
    m = EmailMessage()
    m["From"] = sender
    m["To"] = ", ".join(to)
    if cc:
        m["Cc"] = ", ".join(cc)
    m["Subject"] = f"postfix-it check {token}"
    m.set_content(f"plain body {token}\n")
    m.add_alternative(f"<html><body><p>html body {token}</p></body></html>", subtype="html")
    return m


def ctx_for(env):
    ctx = ssl.create_default_context(cafile=env["POSTFIX_IT_CA_FILE"])
    return ctx


def expect_code(name, exc_or_code, want):
    code = exc_or_code if isinstance(exc_or_code, int) else getattr(exc_or_code, "smtp_code", None)
    if code == want:
        ok(name, str(code))
        return True
    fail(name, f"expected {want}, got {exc_or_code!r}")
    return False


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    env = load_env(sys.argv[1])
    host = env["POSTFIX_IT_HOST"]
    smtp_port = int(env["POSTFIX_IT_SMTP_PORT"])
    sub_port = int(env["POSTFIX_IT_SUBMISSION_PORT"])
    smtps_port = int(env["POSTFIX_IT_SMTPS_PORT"])
    sub_wrong = int(env["POSTFIX_IT_SUBMISSION_WRONGHOST_PORT"])
    smtps_wrong = int(env["POSTFIX_IT_SMTPS_WRONGHOST_PORT"])
    user, password = env["POSTFIX_IT_USER"], env["POSTFIX_IT_PASSWORD"]
    sender = "alerts@example.test"
    expected = {}  # local part -> (count before, tokens)
    for local in ("ops", "lead", "a", "b"):
        expected[local] = [maildir_count(env, local), []]

    def expect_delivery(local, token):
        expected[local][1].append(token)

    # ------------------------------------------------------------ plain port
    try:
        with smtplib.SMTP(host, smtp_port, timeout=20) as s:
            s.ehlo("check.example.test")
            if s.has_extn("starttls") or s.has_extn("auth"):
                fail("plain: no STARTTLS/AUTH offered", f"features {sorted(s.esmtp_features)}")
            else:
                ok("plain: no STARTTLS/AUTH offered")
            token = uuid.uuid4().hex
            refused = s.send_message(message(sender, ["ops@example.test"], token))
            if refused:
                fail("plain: relay to ops@", f"refused {refused}")
            else:
                ok("plain: relay to ops@ accepted")
                expect_delivery("ops", token)

            # recipient policies, one transaction each
            for rcpt, want in (("reject@example.test", 550), ("grey@example.test", 450),
                               ("unknown@example.test", 550)):
                s.rset()
                code, _ = s.mail(sender)
                if code != 250:
                    fail(f"plain: MAIL for {rcpt}", f"{code}")
                    continue
                code, msg = s.rcpt(rcpt)
                expect_code(f"plain: RCPT {rcpt} -> {want} ({msg.decode(errors='replace')[:60]})", code, want)
            s.rset()
            # partial acceptance: b@ accepted, reject@ refused
            token = uuid.uuid4().hex
            refused = s.sendmail(sender, ["b@example.test", "reject@example.test"],
                                 message(sender, ["b@example.test", "reject@example.test"], token).as_bytes())
            if list(refused) == ["reject@example.test"] and refused["reject@example.test"][0] == 550:
                ok("plain: partial send (b@ accepted, reject@ 550)")
                expect_delivery("b", token)
            else:
                fail("plain: partial send", f"refused {refused}")
    except Exception as e:  # noqa: BLE001
        fail("plain port", repr(e))

    # ------------------------------------------------------------ submission (STARTTLS)
    try:
        with smtplib.SMTP(host, sub_port, timeout=20) as s:
            s.ehlo("check.example.test")
            if not s.has_extn("starttls"):
                fail("submission: STARTTLS offered", f"features {sorted(s.esmtp_features)}")
            else:
                ok("submission: STARTTLS offered")
            if s.has_extn("auth"):
                fail("submission: no AUTH before STARTTLS", f"AUTH {s.esmtp_features.get('auth')}")
            else:
                ok("submission: no AUTH before STARTTLS")
            code, msg = s.mail(sender)
            expect_code(f"submission: MAIL before STARTTLS -> 530 ({msg.decode(errors='replace')[:50]})", code, 530)
            s.starttls(context=ctx_for(env))  # verifies the chain and IP SAN 127.0.0.1
            ok("submission: STARTTLS, certificate verified for 127.0.0.1",
               s.sock.version() if hasattr(s.sock, "version") else "")
            s.ehlo("check.example.test")
            mechs = s.esmtp_features.get("auth", "")
            if "PLAIN" in mechs.upper() and "LOGIN" in mechs.upper():
                ok("submission: AUTH offered after STARTTLS", mechs.strip())
            else:
                fail("submission: AUTH offered after STARTTLS", repr(mechs))
            # no AUTH -> the recipient is refused
            s.mail(sender)
            code, msg = s.rcpt("ops@example.test")
            if 500 <= code < 600:
                ok(f"submission: unauthenticated RCPT refused ({code})")
            else:
                fail("submission: unauthenticated RCPT refused", f"{code} {msg!r}")
            s.rset()
            try:
                s.user, s.password = user, "wrong-password"
                s.auth("PLAIN", s.auth_plain)
                fail("submission: wrong password -> 535", "accepted!")
            except smtplib.SMTPAuthenticationError as e:
                expect_code("submission: wrong password -> 535", e, 535)
        # fresh connection for the good login (Postfix counts the failed AUTH)
        with smtplib.SMTP(host, sub_port, timeout=20) as s:
            s.starttls(context=ctx_for(env))
            s.ehlo("check.example.test")
            s.user, s.password = user, password
            code, _ = s.auth("PLAIN", s.auth_plain)
            expect_code("submission: AUTH PLAIN", code, 235)
            token = uuid.uuid4().hex
            refused = s.send_message(message(sender, ["ops@example.test"], token, cc=["lead@example.test"]))
            if refused:
                fail("submission: send to ops@ + cc lead@", f"refused {refused}")
            else:
                ok("submission: send to ops@ + cc lead@")
                expect_delivery("ops", token)
                expect_delivery("lead", token)
    except Exception as e:  # noqa: BLE001
        fail("submission port", repr(e))

    # the name localhost is on the certificate too
    try:
        with smtplib.SMTP("localhost", sub_port, timeout=20) as s:
            s.starttls(context=ctx_for(env))
            ok("submission: certificate verified for localhost")
    except Exception as e:  # noqa: BLE001
        fail("submission: certificate verified for localhost", repr(e))

    # ------------------------------------------------------------ smtps (implicit TLS)
    try:
        with smtplib.SMTP_SSL(host, smtps_port, timeout=20, context=ctx_for(env)) as s:
            ok("smtps: implicit TLS, certificate verified", s.sock.version())
            s.ehlo("check.example.test")
            if not s.has_extn("auth"):
                fail("smtps: AUTH offered", f"features {sorted(s.esmtp_features)}")
            s.user, s.password = user, password
            code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            expect_code("smtps: AUTH LOGIN", code, 235)
            token = uuid.uuid4().hex
            refused = s.send_message(message(sender, ["a@example.test"], token))
            if refused:
                fail("smtps: send to a@", f"refused {refused}")
            else:
                ok("smtps: send to a@")
                expect_delivery("a", token)
    except Exception as e:  # noqa: BLE001
        fail("smtps port", repr(e))

    # ------------------------------------------------------------ wrong host name
    for label, port, implicit in (("smtps-wronghost", smtps_wrong, True),
                                  ("submission-wronghost", sub_wrong, False)):
        for name in ("127.0.0.1", "localhost"):
            try:
                if implicit:
                    with smtplib.SMTP_SSL(name, port, timeout=20, context=ctx_for(env)):
                        pass
                else:
                    with smtplib.SMTP(name, port, timeout=20) as s:
                        s.starttls(context=ctx_for(env))
                fail(f"{label}: verification fails for {name}", "handshake succeeded")
            except ssl.SSLCertVerificationError as e:
                ok(f"{label}: verification fails for {name}", e.verify_message)
            except Exception as e:  # noqa: BLE001
                fail(f"{label}: verification fails for {name}", repr(e))
        # ... but the certificate is otherwise valid for wrong.example
        try:
            raw = socket.create_connection((host, port), timeout=20)
            if not implicit:
                f = raw.makefile("rb")
                f.readline()
                raw.sendall(b"EHLO check.example.test\r\n")
                while True:
                    line = f.readline()
                    if line[3:4] != b"-":
                        break
                raw.sendall(b"STARTTLS\r\n")
                line = f.readline()
                assert line.startswith(b"220"), line
            tls = ctx_for(env).wrap_socket(raw, server_hostname="wrong.example")
            tls.close()
            ok(f"{label}: verification succeeds for wrong.example")
        except Exception as e:  # noqa: BLE001
            fail(f"{label}: verification succeeds for wrong.example", repr(e))

    # ------------------------------------------------------------ connection limit
    limit = int(env.get("POSTFIX_IT_CONN_LIMIT", "10"))
    for attempt in range(5):
        socks, codes = [], []
        try:
            for _ in range(limit + 2):
                c = socket.create_connection((host, smtp_port), timeout=20)
                socks.append(c)
                greeting = c.makefile("rb").readline()
                codes.append(int(greeting[:3]) if greeting[:3].isdigit() else greeting)
        finally:
            for c in socks:
                try:
                    c.sendall(b"QUIT\r\n")
                except OSError:
                    pass
                c.close()
        want = [220] * limit + [421] * 2
        if codes == want:
            ok(f"conn limit: {limit} x 220, then 421", f"{codes}")
            break
        if attempt == 4:
            fail(f"conn limit: {limit} x 220, then 421", f"{codes}")
        time.sleep(1)  # earlier sessions may still be counted by anvil

    # ------------------------------------------------------------ Maildir
    deadline = time.time() + 30
    while True:
        missing = [(local, t) for local, (_, toks) in expected.items() for t in toks
                   if not maildir_contains(env, local, t)]
        if not missing or time.time() > deadline:
            break
        time.sleep(0.25)
    counts = {local: maildir_count(env, local) for local in expected}
    if missing:
        fail("Maildir delivery", f"not delivered within 30 s: {missing}; counts {counts}")
    else:
        grown = {local: counts[local] - before for local, (before, _) in expected.items()}
        ok("Maildir delivery", f"new messages {grown}; totals {counts}")

    print(json.dumps({"failures": FAILURES, "maildir_counts": counts}))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
