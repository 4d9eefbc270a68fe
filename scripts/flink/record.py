#!/usr/bin/env python3
"""Records what a real Flink cluster's REST API answers while a scenario runs.

Standard library only. Subcommands:

  record.py job --rest URL --out FILE.jsonl (--jid JID | --name JOBNAME)
                [--interval 0.25] [--max 120] [--linger 6]
                [--cancel-after-running S] [--after-restart]
                [--cancel-after-ckpt-failures N]
      Polls, every --interval seconds: /jobs/overview, /jobs/{jid}/status,
      /jobs/{jid}, /jobs/{jid}/exceptions?maxExceptions=10,
      /jobs/{jid}/checkpoints, /jobs/{jid}/metrics?get=numRestarts and (every
      4th round) /config. With --name it first waits for a job of that name
      that was not in /jobs/overview when it started (start the recorder, then
      submit). Stops --linger seconds after /jobs/overview shows a globally
      terminal state (FAILED, FINISHED, CANCELED), or after --max seconds
      (cancelling the job first). --cancel-after-running S cancels the job
      (PATCH /jobs/{jid}?mode=cancel) once overview has shown RUNNING for S
      seconds (with --after-restart: only after a failure was seen, i.e. an
      exception entry or RESTARTING). --cancel-after-ckpt-failures N cancels
      it 3 s after /checkpoints shows counts.failed >= N with latest.failed set.

  record.py cluster --rest URL --out FILE.jsonl --seconds S [--jid JID]
      Polls /overview, /jobs/overview, /config and /jobs/JID/status (for a
      JobManager restart); stops --linger s after the REST API was unreachable
      and then shows a TaskManager again, or after --seconds.

  record.py summarize FILE.jsonl     prints the changes and measured lags as JSON
  record.py cpu PID...               prints CPU seconds used by the PIDs (self + reaped children)

Every line of FILE.jsonl is one answer: {"t": epoch ms when the answer
arrived, "sent": epoch ms when asked, "rel": seconds since the recorder
started, "path", "status" (HTTP status, 0 = no connection), and either
"body" (parsed JSON or text) when the answer differs from the previous one
for that path (ignoring the volatile "now"/"duration" fields) or
"same": true}. The first line is {"meta": {...}}.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

TERMINAL = {"FAILED", "FINISHED", "CANCELED"}
VOLATILE = {"now", "duration"}


def now_ms():
    return int(time.time() * 1000)


def strip_volatile(v):
    if isinstance(v, dict):
        return {k: strip_volatile(x) for k, x in v.items() if k not in VOLATILE}
    if isinstance(v, list):
        return [strip_volatile(x) for x in v]
    return v


def http(base, path, method="GET", timeout=3.0):
    req = urllib.request.Request(base.rstrip("/") + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, "connection error: %s" % (getattr(e, "reason", None) or e)
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


class Recorder:
    def __init__(self, base, out):
        self.base = base
        self.out = open(out, "w")
        self.start = time.time()
        self.prev = {}
        self.latest = {}

    def meta(self, **kw):
        kw["start_ms"] = int(self.start * 1000)
        kw["rest"] = self.base
        self.out.write(json.dumps({"meta": kw}) + "\n")

    def get(self, path, method="GET"):
        sent = now_ms()
        status, body = http(self.base, path, method)
        t = now_ms()
        key = strip_volatile(body)
        line = {"t": t, "sent": sent, "rel": round(t / 1000.0 - self.start, 3), "path": path,
                "status": status}
        if method != "GET":
            line["method"] = method
        if method != "GET" or self.prev.get(path) != (status, key):
            line["body"] = body
            self.prev[path] = (status, key)
        else:
            line["same"] = True
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.out.flush()
        self.latest[path] = (status, body)
        return status, body

    def log(self, msg):
        sys.stderr.write("[%7.2fs] %s\n" % (time.time() - self.start, msg))
        sys.stderr.flush()


def job_state(overview, jid):
    if isinstance(overview, dict):
        for j in overview.get("jobs", []):
            if j.get("jid") == jid:
                return j.get("state")
    return None


def cmd_job(a):
    rec = Recorder(a.rest, a.out)
    rec.meta(mode="job", jid=a.jid, name=a.name, interval=a.interval)
    jid = a.jid
    if not jid:
        _, ov = rec.get("/jobs/overview")
        known = {j["jid"] for j in (ov or {}).get("jobs", [])} if isinstance(ov, dict) else set()
        rec.log("waiting for a new job named %r" % a.name)
        deadline = time.time() + a.wait_submit
        while not jid:
            if time.time() > deadline:
                rec.log("no job appeared")
                return 2
            time.sleep(a.interval)
            _, ov = rec.get("/jobs/overview")
            for j in (ov or {}).get("jobs", []) if isinstance(ov, dict) else []:
                if j["jid"] not in known and (not a.name or j.get("name") == a.name):
                    jid = j["jid"]
        rec.log("job %s appeared" % jid)
        rec.out.write(json.dumps({"meta": {"jid": jid, "found_rel": round(time.time() - rec.start, 3)}}) + "\n")
    paths = [
        "/jobs/overview",
        "/jobs/%s/status" % jid,
        "/jobs/%s" % jid,
        "/jobs/%s/exceptions?maxExceptions=10" % jid,
        "/jobs/%s/checkpoints" % jid,
        "/jobs/%s/metrics?get=numRestarts" % jid,
    ]
    t_first = time.time()
    last_state = None
    running_since = None
    failure_seen = False
    cancel_at = None
    cancelled = False
    terminal_at = None
    rounds = 0
    while True:
        t_round = time.time()
        for p in paths:
            rec.get(p)
        if rounds % 4 == 0:
            rec.get("/config")
        rounds += 1
        _, ov = rec.latest["/jobs/overview"]
        state = job_state(ov, jid)
        if state != last_state:
            rec.log("overview state %s -> %s" % (last_state, state))
            last_state = state
            running_since = time.time() if state == "RUNNING" else None
        if state in ("RESTARTING", "FAILING"):
            failure_seen = True
        _, exc = rec.latest[paths[3]]
        if isinstance(exc, dict) and (exc.get("exceptionHistory") or {}).get("entries"):
            failure_seen = True
        if not cancelled and cancel_at is None:
            if a.cancel_after_running is not None and running_since is not None \
                    and (failure_seen or not a.after_restart) \
                    and time.time() - running_since >= a.cancel_after_running:
                cancel_at = time.time()
            if a.cancel_after_ckpt_failures is not None:
                _, ck = rec.latest[paths[4]]
                if isinstance(ck, dict):
                    failed = (ck.get("counts") or {}).get("failed") or 0
                    latest_failed = (ck.get("latest") or {}).get("failed")
                    if failed >= a.cancel_after_ckpt_failures and latest_failed:
                        cancel_at = time.time() + 3.0
        if not cancelled and time.time() - t_first > a.max and state not in TERMINAL:
            rec.log("--max reached")
            cancel_at = time.time()
        if not cancelled and cancel_at is not None and time.time() >= cancel_at and state not in TERMINAL:
            rec.log("cancelling")
            rec.get("/jobs/%s?mode=cancel" % jid, method="PATCH")
            cancelled = True
        if state in TERMINAL and terminal_at is None:
            terminal_at = time.time()
        if terminal_at is not None and time.time() - terminal_at >= a.linger:
            break
        if time.time() - t_first > a.max + 30:
            rec.log("giving up")
            break
        time.sleep(max(0.0, a.interval - (time.time() - t_round)))
    print(jid)
    return 0


def cmd_cluster(a):
    rec = Recorder(a.rest, a.out)
    rec.meta(mode="cluster", interval=a.interval, jid=a.jid)
    end = time.time() + a.seconds
    last = None
    outage = False
    back_at = None
    while time.time() < end:
        t_round = time.time()
        st, ov = rec.get("/overview")
        rec.get("/jobs/overview")
        rec.get("/config")
        if a.jid:
            rec.get("/jobs/%s/status" % a.jid)
        tm = ov.get("taskmanagers") if isinstance(ov, dict) else None
        if (st, tm) != last:
            rec.log("/overview status %s taskmanagers %s" % (st, tm))
            last = (st, tm)
        if st != 200:
            outage = True
        elif outage and back_at is None and (tm or 0) >= 1:
            back_at = time.time()
        if back_at is not None and time.time() - back_at >= a.linger:
            break
        time.sleep(max(0.0, a.interval - (time.time() - t_round)))
    return 0


def first_line(s, n=160):
    s = (s or "").strip().splitlines()
    return s[0][:n] if s else ""


def caused_by(trace):
    return [l.strip()[:200] for l in (trace or "").splitlines() if l.strip().startswith("Caused by:")]


def describe(path, status, body):
    """A short, comparable description of one answer."""
    if status != 200 or not isinstance(body, dict):
        return {"status": status, "text": (body if isinstance(body, str) else json.dumps(body))[:300]}
    if path == "/jobs/overview":
        return {"jobs": [{k: j.get(k) for k in ("jid", "name", "state", "end-time")} for j in body.get("jobs", [])]}
    if path.endswith("/status"):
        return {"status": body.get("status")}
    if path.endswith("/exceptions?maxExceptions=10"):
        h = body.get("exceptionHistory") or {}
        ents = h.get("entries") or []
        return {
            "entries": len(ents),
            "truncated": h.get("truncated"),
            "entry_timestamps": [e.get("timestamp") for e in ents],
            "newest": {
                "exceptionName": ents[0].get("exceptionName"),
                "first_line": first_line(ents[0].get("stacktrace")),
                "caused_by": caused_by(ents[0].get("stacktrace")),
                "stacktrace_len": len(ents[0].get("stacktrace") or ""),
                "taskName": ents[0].get("taskName"),
                "endpoint": ents[0].get("endpoint"),
                "failureLabels": ents[0].get("failureLabels"),
                "concurrent": len(ents[0].get("concurrentExceptions") or []),
            } if ents else None,
            "top_level_keys": sorted(body.keys()),
        }
    if path.endswith("/checkpoints"):
        latest = body.get("latest") or {}
        f = latest.get("failed")
        return {
            "counts": body.get("counts"),
            "latest_completed_id": (latest.get("completed") or {}).get("id"),
            "latest_failed": {"id": f.get("id"), "failure_timestamp": f.get("failure_timestamp"),
                              "failure_message": (f.get("failure_message") or "")[:300]} if f else None,
            "history_statuses": [h.get("status") for h in body.get("history") or []][:10],
        }
    if "/metrics" in path:
        return {"metrics": body if isinstance(body, list) else body}
    if path.startswith("/jobs/"):
        return {"state": body.get("state"), "timestamps": body.get("timestamps"),
                "status-counts": body.get("status-counts"), "end-time": body.get("end-time"),
                "keys": sorted(body.keys())}
    if path == "/config":
        return body
    if path == "/overview":
        return {k: body.get(k) for k in ("taskmanagers", "slots-total", "slots-available", "jobs-running",
                                         "flink-version")}
    return body


def cmd_summarize(a):
    meta = {}
    changes = []
    polls = {}
    jid = None
    with open(a.file) as f:
        for raw in f:
            line = json.loads(raw)
            if "meta" in line:
                meta.update(line["meta"])
                jid = meta.get("jid") or jid
                continue
            p = line["path"]
            polls[p] = polls.get(p, 0) + 1
            if "body" in line:
                changes.append({"rel": line["rel"], "t": line["t"], "path": p,
                                "what": describe(p, line["status"], line["body"])})
    out = {"meta": meta, "polls": polls, "changes": changes}
    # Lags: first time each job state shows in each source.
    if jid:
        first = {}
        for c in changes:
            p, w = c["path"], c["what"]
            st = None
            if p == "/jobs/overview":
                for j in w.get("jobs", []):
                    if j.get("jid") == jid:
                        st = j.get("state")
                src = "overview"
            elif p.endswith("/status"):
                st, src = w.get("status"), "status"
            elif p == "/jobs/%s" % jid:
                st, src = w.get("state"), "details"
            else:
                continue
            if st:
                first.setdefault(src, [])
                if not first[src] or first[src][-1][0] != st:
                    first[src].append([st, c["rel"], c["t"]])
        out["state_sequences"] = first
        exc = [c for c in changes if c["path"].endswith("/exceptions?maxExceptions=10")
               and "entries" in c["what"]]
        out["exception_entries_seen"] = [
            {"rel": c["rel"], "t": c["t"], "entries": c["what"]["entries"],
             "newest_ts": (c["what"]["entry_timestamps"] or [None])[0],
             "visible_after_failure_ms": (c["t"] - c["what"]["entry_timestamps"][0])
             if c["what"]["entry_timestamps"] else None}
            for c in exc]
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


def cmd_cpu(a):
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in a.pids:
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except OSError:
            pass
    print("%.2f" % (total / float(tck)))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    j = sub.add_parser("job")
    j.add_argument("--rest", required=True)
    j.add_argument("--out", required=True)
    j.add_argument("--jid")
    j.add_argument("--name")
    j.add_argument("--interval", type=float, default=0.25)
    j.add_argument("--max", type=float, default=120)
    j.add_argument("--linger", type=float, default=6)
    j.add_argument("--wait-submit", type=float, default=180)
    j.add_argument("--cancel-after-running", type=float)
    j.add_argument("--after-restart", action="store_true")
    j.add_argument("--cancel-after-ckpt-failures", type=int)
    c = sub.add_parser("cluster")
    c.add_argument("--rest", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--seconds", type=float, default=30)
    c.add_argument("--jid", help="also poll /jobs/JID/status")
    c.add_argument("--linger", type=float, default=3,
                   help="stop this long after a TaskManager is back following an outage")
    c.add_argument("--interval", type=float, default=0.25)
    s = sub.add_parser("summarize")
    s.add_argument("file")
    u = sub.add_parser("cpu")
    u.add_argument("pids", nargs="*")
    a = ap.parse_args()
    return {"job": cmd_job, "cluster": cmd_cluster, "summarize": cmd_summarize, "cpu": cmd_cpu}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
