#!/usr/bin/env python3
"""smtplib baseline for issue #18: N alert-sized HTML mails over ONE connection.

Usage: burst.py [--env DIR/env] [-n 500] [--mode submission|smtps|plain] [--to ops@example.test]

Connects to the Postfix started by scripts/postfix-it.sh (STARTTLS + AUTH on
the submission port by default, verifying the test CA), sends N messages of a
few KB of HTML each with send_message (smtplib does no PIPELINING: MAIL, RCPT,
DATA are separate round trips), times the loop, then waits (up to --wait s,
default 30) until the recipient's Maildir has grown by N. Prints one JSON
object; exits 1 when not all N were accepted and delivered.
"""
import argparse
import json
import os
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage

DEFAULT_ENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "target", "postfix-it", "env")


def load_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k] = v
    return env


def maildir_count(env, addr):
    local, domain = addr.split("@", 1)
    root = os.path.join(env["POSTFIX_IT_MAIL_ROOT"], domain, local)
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(root, sub)))
        except FileNotFoundError:
            pass
    return n


def alert_message(i, sender, to):
    """An alert like the library sends: multipart/alternative, an HTML table of facts."""
    facts = [
        ("作业 Job", f"flink-etl-orders-{i % 17}"),
        ("状态 Status", "FAILED"),
        ("集群 Cluster", "yarn-prod-bj-03"),
        ("Application", f"application_1700000000000_{i:06d}"),
        ("Checkpoint", f"chk-{10000 + i} failed after 3 attempts"),
        ("Exception", "org.apache.flink.runtime.JobException: Recovery is suppressed by "
                      "FixedDelayRestartBackoffTimeStrategy(maxNumberRestartAttempts=3, backoffTimeMS=10000)"),
    ] + [(f"metric_{k}", f"{k * 3.14159:.5f}") for k in range(40)]
    rows = "\n".join(
        f'<tr><td style="padding:4px;border:1px solid #ddd"><b>{k}</b></td>'
        f'<td style="padding:4px;border:1px solid #ddd">{v}</td></tr>' for k, v in facts)
    html = (f'<html><body><h2 style="color:#c0392b">[告警 ALERT] Flink job failed #{i}</h2>'
            f'<table style="border-collapse:collapse">\n{rows}\n</table>'
            f'<p>Sent by alertkit burst baseline.</p></body></html>')
    text = "\n".join(f"{k}: {v}" for k, v in facts)
    m = EmailMessage()
    m["From"] = f'"告警中心" <{sender}>'
    m["To"] = to
    m["Subject"] = f"[告警] Flink job failed #{i}"
    m.set_content(text)
    m.add_alternative(html, subtype="html")
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default=DEFAULT_ENV)
    ap.add_argument("-n", "--count", type=int, default=500)
    ap.add_argument("--mode", choices=("submission", "smtps", "plain"), default="submission")
    ap.add_argument("--to", default="ops@example.test")
    ap.add_argument("--wait", type=float, default=30.0)
    args = ap.parse_args()

    env = load_env(args.env)
    host = env["POSTFIX_IT_HOST"]
    sender = "alerts@example.test"
    ctx = ssl.create_default_context(cafile=env["POSTFIX_IT_CA_FILE"])
    msgs = [alert_message(i, sender, args.to) for i in range(args.count)]
    size = len(msgs[0].as_bytes())

    before = maildir_count(env, args.to)
    t0 = time.perf_counter()
    if args.mode == "smtps":
        s = smtplib.SMTP_SSL(host, int(env["POSTFIX_IT_SMTPS_PORT"]), timeout=60, context=ctx)
    else:
        port = env["POSTFIX_IT_SUBMISSION_PORT" if args.mode == "submission" else "POSTFIX_IT_SMTP_PORT"]
        s = smtplib.SMTP(host, int(port), timeout=60)
        if args.mode == "submission":
            s.starttls(context=ctx)
    if args.mode != "plain":
        s.login(env["POSTFIX_IT_USER"], env["POSTFIX_IT_PASSWORD"])
    t1 = time.perf_counter()
    refused_total, errors = 0, []
    for m in msgs:
        try:
            refused = s.send_message(m)
            refused_total += len(refused)
        except smtplib.SMTPException as e:
            errors.append(repr(e))
            if len(errors) > 5:
                break
    t2 = time.perf_counter()
    try:
        s.quit()
    except smtplib.SMTPException:
        pass

    sent = args.count - len(errors) - refused_total
    deadline = time.time() + args.wait
    while maildir_count(env, args.to) - before < sent and time.time() < deadline:
        time.sleep(0.2)
    t3 = time.perf_counter()
    delivered = maildir_count(env, args.to) - before

    result = {
        "client": "python smtplib (one connection, no pipelining)",
        "mode": args.mode,
        "messages": args.count,
        "message_bytes": size,
        "accepted": sent,
        "errors": errors[:5],
        "connect_tls_auth_s": round(t1 - t0, 4),
        "send_s": round(t2 - t1, 4),
        "messages_per_s": round(sent / (t2 - t1), 1) if t2 > t1 else None,
        "delivered": delivered,
        "delivered_all_after_s": round(t3 - t1, 2) if delivered >= args.count else None,
    }
    print(json.dumps(result, ensure_ascii=False))
    return 0 if sent == args.count and delivered >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
