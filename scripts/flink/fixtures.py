#!/usr/bin/env python3
"""Copies representative REST answers out of recorded timelines into test fixtures.

    fixtures.py RUN_DIR/timeline OUT_DIR

Reads the SCENARIO.jsonl files written by `record.py job` / `record.py cluster`
(see scripts/flink-it.sh all) and writes one JSON file per fixture below.
Answers are written as Flink sent them; a stack trace longer than 20 KB
would be cut (with a marker line), none of Flink 2.3's were.
Standard library only.
"""

import json
import os
import sys

MAX_TRACE = 20 * 1024


def load(tl, scenario):
    path = os.path.join(tl, scenario + ".jsonl")
    meta, answers = {}, []
    with open(path) as f:
        for raw in f:
            line = json.loads(raw)
            if "meta" in line:
                meta.update(line["meta"])
            elif "body" in line:
                answers.append(line)
    return meta, answers


def trim(v):
    if isinstance(v, dict):
        return {k: (x[:MAX_TRACE] + "\n\t... (trimmed by fixtures.py)\n"
                    if k == "stacktrace" and isinstance(x, str) and len(x) > MAX_TRACE else trim(x))
                for k, x in v.items()}
    if isinstance(v, list):
        return [trim(x) for x in v]
    return v


def kind(path):
    if path == "/jobs/overview":
        return "overview"
    if path == "/config":
        return "config"
    if path == "/overview":
        return "cluster"
    if path.endswith("/status"):
        return "status"
    if "/exceptions" in path:
        return "exceptions"
    if path.endswith("/checkpoints"):
        return "checkpoints"
    if "/metrics" in path:
        return "metrics"
    if "?mode=cancel" in path:
        return "cancel"
    return "details"


def entries(b):
    return ((b or {}).get("exceptionHistory") or {}).get("entries") or []


def job_in(b, jid):
    for j in (b or {}).get("jobs", []):
        if j.get("jid") == jid:
            return j
    return None


# name -> (scenario, kind, predicate(body, meta, status), "first" | "last", note)
FIXTURES = [
    ("config.json", "finish", "config", lambda b, m, s: s == 200, "first",
     "GET /config of a Flink 2.3.0 session cluster"),
    ("overview_initializing.json", "fail_no_restart", "overview",
     lambda b, m, s: (job_in(b, m["jid"]) or {}).get("state") == "INITIALIZING", "first",
     "/jobs/overview right after submission"),
    ("overview_running.json", "run_forever", "overview",
     lambda b, m, s: (job_in(b, m["jid"]) or {}).get("state") == "RUNNING", "last",
     "/jobs/overview with one RUNNING job and earlier FAILED/CANCELED/FINISHED jobs"),
    ("overview_restarting.json", "fail_once_recover", "overview",
     lambda b, m, s: (job_in(b, m["jid"]) or {}).get("state") == "RESTARTING", "first",
     "/jobs/overview while a job restarts"),
    ("overview_finished.json", "finish", "overview",
     lambda b, m, s: (job_in(b, m["jid"]) or {}).get("state") == "FINISHED", "last",
     "/jobs/overview after a bounded job FINISHED"),
    ("overview_init_failed.json", "checkpoint_bad_dir", "overview",
     lambda b, m, s: (job_in(b, m["jid"]) or {}).get("state") == "FAILED", "first",
     "/jobs/overview for a job that failed while the JobMaster was created"),
    ("job_details_initializing.json", "fail_no_restart", "details",
     lambda b, m, s: s == 200 and b.get("state") == "INITIALIZING", "first", "/jobs/{jid}"),
    ("job_details_running.json", "run_forever", "details",
     lambda b, m, s: s == 200 and b.get("state") == "RUNNING", "last", "/jobs/{jid}"),
    ("job_details_restarting.json", "fail_fixed_delay", "details",
     lambda b, m, s: s == 200 and b.get("state") == "RESTARTING", "first", "/jobs/{jid}"),
    ("job_details_running_after_restart.json", "fast_restart", "details",
     lambda b, m, s: s == 200 and b.get("state") == "RUNNING" and b["timestamps"].get("RESTARTING"),
     "first", "/jobs/{jid} of a RUNNING job that restarted once (timestamps.RESTARTING > 0)"),
    ("job_details_failed.json", "fail_fixed_delay", "details",
     lambda b, m, s: s == 200 and b.get("state") == "FAILED", "first", "/jobs/{jid}"),
    ("job_details_canceled.json", "run_forever", "details",
     lambda b, m, s: s == 200 and b.get("state") == "CANCELED", "first", "/jobs/{jid}"),
    ("job_details_finished.json", "finish", "details",
     lambda b, m, s: s == 200 and b.get("state") == "FINISHED", "first", "/jobs/{jid}"),
    ("job_status_restarting.json", "fail_once_recover", "status",
     lambda b, m, s: s == 200 and b.get("status") == "RESTARTING", "first", "/jobs/{jid}/status"),
    ("exceptions_none.json", "run_forever", "exceptions",
     lambda b, m, s: s == 200 and not entries(b), "first", "no failure yet"),
    ("exceptions_first_failure.json", "fail_no_restart", "exceptions",
     lambda b, m, s: s == 200 and len(entries(b)) == 1, "first",
     "restart-strategy none: one JobException entry, task failure in concurrentExceptions"),
    ("exceptions_first_restart.json", "fail_once_recover", "exceptions",
     lambda b, m, s: s == 200 and len(entries(b)) == 1, "first",
     "first failure of a job that restarts: the task's own exception, with taskName"),
    ("exceptions_after_restart.json", "fail_fixed_delay", "exceptions",
     lambda b, m, s: s == 200 and len(entries(b)) == 2, "first",
     "after the second restart: two task entries, newest first (execution #1, #0)"),
    ("exceptions_fixed_delay_failed.json", "fail_fixed_delay", "exceptions",
     lambda b, m, s: s == 200 and entries(b) and entries(b)[0]["exceptionName"].endswith("JobException"),
     "first", "3 restarts then FAILED: 4 entries, newest first"),
    ("exceptions_init_failed.json", "checkpoint_bad_dir", "exceptions",
     lambda b, m, s: s == 200 and entries(b), "first",
     "JobInitializationException: checkpoint storage below a regular file"),
    ("checkpoints_initializing_500.json", "fail_no_restart", "checkpoints",
     lambda b, m, s: s == 500, "first", "HTTP 500 body while the job initialises"),
    ("checkpoints_disabled.json", "run_forever", "checkpoints",
     lambda b, m, s: s == 200, "first", "checkpointing off: all counts 0"),
    ("checkpoints_after_start.json", "checkpoint_fail", "checkpoints",
     lambda b, m, s: s == 200 and (b.get("counts") or {}).get("failed", 0) > 0
     and not (b.get("latest") or {}).get("failed"), "first",
     "checkpointing on: early triggers failed (tasks not running yet), latest.failed null"),
    ("checkpoints_failed.json", "checkpoint_fail", "checkpoints",
     lambda b, m, s: s == 200 and (b.get("latest") or {}).get("failed"), "last",
     "real checkpoint failures (directory replaced by a file): latest.failed set"),
    ("checkpoints_first_real_failure.json", "checkpoint_fail", "checkpoints",
     lambda b, m, s: s == 200 and (b.get("latest") or {}).get("failed"), "first",
     "first answer with latest.failed set"),
    ("metrics_num_restarts.json", "fail_fixed_delay", "metrics",
     lambda b, m, s: s == 200 and b and b[0].get("value") not in (None, "0"), "first",
     "/jobs/{jid}/metrics?get=numRestarts"),
    ("overview_after_jm_restart.json", "jm_restart", "overview",
     lambda b, m, s: s == 200 and b == {"jobs": []}, "first",
     "/jobs/overview after a JobManager restart without HA"),
    ("job_status_after_jm_restart.json", "jm_restart", "status",
     lambda b, m, s: s == 500, "first",
     "/jobs/{old jid}/status after a JobManager restart: HTTP 500 FlinkJobNotFoundException"),
]


SCENARIOS = ("fail_no_restart", "fail_fixed_delay", "fail_once_recover", "fast_restart",
             "run_forever", "finish", "checkpoint_fail", "checkpoint_bad_dir", "jm_restart")


def short(k, status, b, jid):
    """What a watcher would read from one answer, in a few fields."""
    if status != 200:
        return {"http": status}
    if k == "overview":
        j = job_in(b, jid)
        return {"state": j.get("state") if j else None, "jobs": len(b.get("jobs", []))}
    if k == "status":
        return {"state": b.get("status")}
    if k == "details":
        return {"state": b.get("state"),
                "timestamps": {s: t for s, t in (b.get("timestamps") or {}).items() if t}}
    if k == "exceptions":
        ents = entries(b)
        return {"entries": len(ents), "newest": ({"exceptionName": ents[0].get("exceptionName"),
                                                  "timestamp": ents[0].get("timestamp"),
                                                  "taskName": ents[0].get("taskName")} if ents else None)}
    if k == "checkpoints":
        f = (b.get("latest") or {}).get("failed")
        return {"counts": b.get("counts"),
                "latest_failed": {"id": f.get("id"), "failure_timestamp": f.get("failure_timestamp"),
                                  "failure_message": f.get("failure_message")} if f else None}
    if k == "metrics":
        return {"numRestarts": b[0].get("value") if b else None}
    if k == "cluster":
        return {"taskmanagers": b.get("taskmanagers"), "slots-total": b.get("slots-total")}
    return None


def compact_timelines(tl):
    """Per scenario, every change a watcher could see, in order: [t_ms, rel_s, source, what]."""
    out = {}
    for sc in SCENARIOS:
        try:
            meta, answers = load(tl, sc)
        except OSError:
            continue
        jid = meta.get("jid")
        rows, last = [], {}
        for a in answers:
            k = kind(a["path"])
            if k in ("config", "cancel"):
                if k == "cancel":
                    rows.append([a["t"], a["rel"], "PATCH cancel", {"http": a["status"]}])
                continue
            w = short(k, a["status"], a["body"], jid)
            if last.get(k) != w:
                rows.append([a["t"], a["rel"], k, w])
                last[k] = w
        out[sc] = {"jid": jid, "poll_interval_s": meta.get("interval"), "start_ms": meta.get("start_ms"),
                   "changes": rows}
    return out


def main():
    tl, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    cache = {}
    index = {}
    for name, scenario, k, pred, which, note in FIXTURES:
        if scenario not in cache:
            try:
                cache[scenario] = load(tl, scenario)
            except OSError as e:
                print("skip %s: %s" % (name, e), file=sys.stderr)
                cache[scenario] = ({}, [])
        meta, answers = cache[scenario]
        hits = [a for a in answers if kind(a["path"]) == k and pred(a["body"], meta, a["status"])]
        if not hits:
            print("no answer for %s" % name, file=sys.stderr)
            continue
        a = hits[0] if which == "first" else hits[-1]
        body = trim(a["body"])
        if isinstance(body, str):  # error bodies that were not JSON
            body = {"_text": body}
        with open(os.path.join(out, name), "w") as f:
            json.dump(body, f, indent=1)
            f.write("\n")
        index[name] = {"scenario": scenario, "path": a["path"], "status": a["status"],
                       "t_ms": a["t"], "rel_s": a["rel"], "jid": meta.get("jid"), "note": note}
    with open(os.path.join(out, "timelines.json"), "w") as f:
        json.dump(compact_timelines(tl), f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "INDEX.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote %d fixtures to %s" % (len(index), out))


if __name__ == "__main__":
    main()
