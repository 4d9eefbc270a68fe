"""PyFlink jobs that drive a real Flink cluster through the watcher's scenarios.

Submitted by `scripts/flink-it.sh submit DIR SCENARIO` as
    flink run -d -py scenario_job.py SCENARIO WORKDIR
Each scenario is one small Table API pipeline: a datagen source, an optional
Python scalar UDF that misbehaves on purpose, and a blackhole sink.

Scenarios:
  fail_no_restart    UDF raises RuntimeError("job failed") caused by
                     IllegalStateException("orders-etl boom"); restart none -> FAILED
  fail_fixed_delay   the same on every attempt; fixed-delay 3 attempts, 2 s -> FAILED
  fail_once_recover  fails on the first attempt only (marker file), then runs; fixed-delay 2 s
  fast_restart       fails on the first attempt only; fixed-delay with a 200 ms delay
  run_forever        no UDF, runs until cancelled (cancel and JobManager-restart cases)
  finish             bounded datagen (no UDF) -> FINISHED
  checkpoint_fail    checkpoints every 1 s to a fresh directory; after ~6 s the UDF
                     (running in the TaskManager on this machine) replaces the job's
                     checkpoint directory by a regular file, so every later checkpoint
                     fails in the JobManager while the job keeps RUNNING
                     (tolerable failed checkpoints: 1000)
  checkpoint_bad_dir checkpoint directory below a regular file from the start
                     (the JobManager cannot create its checkpoint storage)
"""

import os
import sys
import time

from pyflink.table import DataTypes, EnvironmentSettings, TableEnvironment
from pyflink.table.udf import ScalarFunction, udf

SCENARIOS = (
    "fail_no_restart",
    "fail_fixed_delay",
    "fail_once_recover",
    "fast_restart",
    "run_forever",
    "finish",
    "checkpoint_fail",
    "checkpoint_bad_dir",
)


class IllegalStateException(Exception):
    """Named like the Java exception so the cause is recognizable in the trace."""


class Boom(ScalarFunction):
    """Passes rows through; raises after `after` rows when this attempt must fail.

    mode "always": every attempt fails. mode "once": only the attempt that finds
    no marker file fails (it creates the marker first), later attempts run.
    """

    def __init__(self, mode, marker, after):
        self.mode = mode
        self.marker = marker
        self.after = after

    def open(self, function_context):
        self.rows = 0
        if self.mode == "always":
            self.fail = True
        elif os.path.exists(self.marker):
            self.fail = False
        else:
            with open(self.marker, "w") as f:
                f.write("first attempt %f\n" % time.time())
            self.fail = True

    def eval(self, x):
        self.rows += 1
        if self.fail and self.rows > self.after:
            try:
                raise IllegalStateException("orders-etl boom")
            except IllegalStateException as cause:
                raise RuntimeError("job failed") from cause
        return x


class BreakCheckpointDir(ScalarFunction):
    """After `delay` seconds, turns every job directory under `base` into a file."""

    def __init__(self, base, delay):
        self.base = base
        self.delay = delay

    def open(self, function_context):
        self.t0 = time.time()
        self.done = False

    def eval(self, x):
        if not self.done and time.time() - self.t0 > self.delay:
            for name in os.listdir(self.base):
                p = os.path.join(self.base, name)
                if os.path.isdir(p) and not name.endswith(".moved"):
                    os.rename(p, p + ".moved")
                    with open(p, "w") as f:
                        f.write("not a directory: checkpoints must fail\n")
            self.done = True
        return x


def main():
    scenario = sys.argv[1]
    work = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else "/tmp/alertkit-flink"
    if scenario not in SCENARIOS:
        raise SystemExit("unknown scenario %r; one of %s" % (scenario, ", ".join(SCENARIOS)))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    markers = os.path.join(work, "markers")
    os.makedirs(markers, exist_ok=True)

    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("pipeline.name", "alertkit-it-" + scenario)
    conf.set("parallelism.default", "1")
    conf.set("python.fn-execution.bundle.size", "10")
    conf.set("python.fn-execution.bundle.time", "200")

    rate = "5"
    rows = None
    fn = None
    if scenario == "fail_no_restart":
        conf.set("restart-strategy.type", "none")
        fn = Boom("always", "", 2)
    elif scenario == "fail_fixed_delay":
        conf.set("restart-strategy.type", "fixed-delay")
        conf.set("restart-strategy.fixed-delay.attempts", "3")
        conf.set("restart-strategy.fixed-delay.delay", "2 s")
        fn = Boom("always", "", 2)
    elif scenario in ("fail_once_recover", "fast_restart"):
        conf.set("restart-strategy.type", "fixed-delay")
        conf.set("restart-strategy.fixed-delay.attempts", "3")
        conf.set(
            "restart-strategy.fixed-delay.delay",
            "2 s" if scenario == "fail_once_recover" else "200 ms",
        )
        fn = Boom("once", os.path.join(markers, "%s-%s" % (scenario, stamp)), 2)
    elif scenario == "run_forever":
        conf.set("restart-strategy.type", "none")
    elif scenario == "finish":
        conf.set("restart-strategy.type", "none")
        rows = "50"
        rate = "25"
    elif scenario in ("checkpoint_fail", "checkpoint_bad_dir"):
        conf.set("restart-strategy.type", "none")
        conf.set("execution.checkpointing.interval", "1 s")
        conf.set("execution.checkpointing.min-pause", "0 ms")
        conf.set("execution.checkpointing.tolerable-failed-checkpoints", "1000")
        conf.set("execution.checkpointing.storage", "filesystem")
        if scenario == "checkpoint_fail":
            base = os.path.join(work, "ckpt", "%s-%s" % (scenario, stamp))
            os.makedirs(base, exist_ok=True)
            fn = BreakCheckpointDir(base, 6.0)
        else:
            blocker = os.path.join(work, "ckpt", "regular-file")
            os.makedirs(os.path.dirname(blocker), exist_ok=True)
            with open(blocker, "w") as f:
                f.write("a regular file: directories cannot be created below it\n")
            base = os.path.join(blocker, "checkpoints")
        conf.set("execution.checkpointing.dir", "file://" + base)

    opts = "'connector' = 'datagen', 'rows-per-second' = '%s'" % rate
    if rows:
        opts += ", 'number-of-rows' = '%s'" % rows
    t_env.execute_sql("CREATE TEMPORARY TABLE src (id BIGINT) WITH (%s)" % opts)
    t_env.execute_sql("CREATE TEMPORARY TABLE snk (id BIGINT) WITH ('connector' = 'blackhole')")
    if fn is not None:
        t_env.create_temporary_function("f", udf(fn, result_type=DataTypes.BIGINT()))
        query = "INSERT INTO snk SELECT f(id) FROM src"
    else:
        query = "INSERT INTO snk SELECT id FROM src"
    result = t_env.execute_sql(query)
    client = result.get_job_client()
    if client is not None:
        print("ALERTKIT_JOB_ID=%s" % client.get_job_id(), flush=True)


if __name__ == "__main__":
    main()
