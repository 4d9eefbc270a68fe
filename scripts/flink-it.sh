#!/usr/bin/env bash
# A real Flink standalone session on 127.0.0.1 for the Flink job watcher's
# integration evidence, with PyFlink scenario jobs (scripts/flink/scenario_job.py)
# and a REST recorder (scripts/flink/record.py).
#
#   scripts/flink-it.sh install             venv target/flink-venv with apache-flink (pinned) + JRE if missing
#   scripts/flink-it.sh start DIR           conf under DIR/conf, JobManager + TaskManager, waits for slots,
#                                           writes DIR/env (FLINK_REST_URL, JM_PID, TM_PID, ...)
#   scripts/flink-it.sh stop DIR            stops both (and their child processes) by PID
#   scripts/flink-it.sh submit DIR SCENARIO submits one scenario detached, prints its job id
#   scripts/flink-it.sh jm-restart DIR      stops and starts the JobManager only (no HA: jobs vanish)
#   scripts/flink-it.sh record DIR SCENARIO submits SCENARIO with the recorder running;
#                                           timeline in DIR/timeline/SCENARIO.jsonl; SCENARIO
#                                           jm_restart: run_forever, then jm-restart, recorded
#   scripts/flink-it.sh all DIR             install, start, record every scenario one after
#                                           another, record a JobManager restart, stop;
#                                           prints wall and CPU seconds per step
#   scripts/flink-it.sh test [DIR]          the watcher's real-Flink test: install, build the test,
#                                           start a fresh session in DIR (default target/flink-it-test),
#                                           run tests/flink_real.rs (it submits every scenario, cancels,
#                                           restarts the JobManager, asserts the alerts), stop by PID;
#                                           exits with the test's status and prints wall and CPU seconds
#
# FLINK_IT_WAIT_TM=0 makes jm-restart wait only for the REST endpoint, not for a TaskManager.
#
# Scenarios: fail_no_restart fail_fixed_delay fail_once_recover fast_restart
#            run_forever finish checkpoint_fail checkpoint_bad_dir
# Everything runs under `nice`; one cluster, one job submission at a time.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$ROOT/scripts/flink"
VENV="${FLINK_VENV:-$ROOT/target/flink-venv}"
FLINK_PYPI_VERSION="${FLINK_PYPI_VERSION:-2.3.0}"
NICE="nice -n 10"
SCENARIOS="fail_no_restart fail_fixed_delay fail_once_recover fast_restart run_forever finish checkpoint_fail checkpoint_bad_dir"

die() { echo "flink-it: $*" >&2; exit 1; }
log() { echo "flink-it: $*" >&2; }

flink_home() {
    "$VENV/bin/python" -c 'import os, pyflink; print(os.path.dirname(os.path.abspath(pyflink.__file__)))'
}

cmd_install() {
    if ! command -v java >/dev/null 2>&1; then
        log "installing openjdk-17-jre-headless (Debian)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
    fi
    java -version 2>&1 | head -1 >&2
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    if ! "$VENV/bin/python" -c "import pyflink.version as v, sys; sys.exit(v.__version__ != '$FLINK_PYPI_VERSION')" 2>/dev/null; then
        log "installing apache-flink==$FLINK_PYPI_VERSION into $VENV"
        $NICE "$VENV/bin/pip" install --quiet --disable-pip-version-check "apache-flink==$FLINK_PYPI_VERSION"
    fi
    "$VENV/bin/python" -c "import pyflink.version as v; print('apache-flink', v.__version__)" >&2
}

# Sets up the environment the distribution's bin scripts read, for work dir $1.
flink_env() {
    local dir="$1"
    FLINK_HOME="$(flink_home)" || die "apache-flink is not installed in $VENV (run: $0 install)"
    export FLINK_HOME
    export FLINK_CONF_DIR="$dir/conf"
    export FLINK_LOG_DIR="$dir/log"
    export FLINK_PID_DIR="$dir/pids"
    export FLINK_IDENT_STRING=alertkit
    export PATH="$VENV/bin:$PATH"
    export PYFLINK_CLIENT_EXECUTABLE="$VENV/bin/python"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load_env() {
    local dir="$1"
    [ -f "$dir/env" ] || die "$dir/env not found: start the cluster first ($0 start $dir)"
    # shellcheck disable=SC1091
    . "$dir/env"
    flink_env "$dir"
}

wait_rest() { # dir url seconds -> waits for /overview with a TaskManager that has slots
    local url="$2" secs="$3" i
    for ((i = 0; i < secs * 4; i++)); do
        if curl -fsS --max-time 2 "$url/overview" 2>/dev/null |
            python3 -c 'import json, sys; o = json.load(sys.stdin); sys.exit(0 if o.get("taskmanagers", 0) >= 1 and o.get("slots-total", 0) > 0 else 1)' 2>/dev/null; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

pid_of() { # dir daemon -> java PID from the daemon's pid file
    local f="$1/pids/flink-alertkit-$2.pid"
    [ -s "$f" ] && tail -n 1 "$f"
}

write_env() {
    local dir="$1"
    cat >"$dir/env" <<EOF
FLINK_REST_URL=http://127.0.0.1:$REST_PORT
REST_PORT=$REST_PORT
RPC_PORT=$RPC_PORT
JM_PID=$JM_PID
TM_PID=$TM_PID
FLINK_CONF_DIR=$dir/conf
FLINK_LOG_DIR=$dir/log
EOF
}

start_jm() {
    local dir="$1"
    rm -f "$dir/pids/flink-alertkit-standalonesession.pid"
    $NICE "$FLINK_HOME/bin/jobmanager.sh" start >>"$dir/log/daemon-scripts.out" 2>&1
    JM_PID="$(pid_of "$dir" standalonesession)" || die "no JobManager PID file"
}

cmd_start() {
    local dir="${1:?usage: start DIR}"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    flink_env "$dir"
    if [ -f "$dir/env" ]; then
        . "$dir/env"
        if kill -0 "$JM_PID" 2>/dev/null || kill -0 "$TM_PID" 2>/dev/null; then
            die "a cluster from $dir/env is still running (JM $JM_PID, TM $TM_PID): stop it first"
        fi
    fi
    mkdir -p "$dir/conf" "$dir/log" "$dir/pids" "$dir/tmp" "$dir/timeline"
    REST_PORT="${FLINK_REST_PORT:-$(free_port)}"
    RPC_PORT="$(free_port)"
    local javaopts
    javaopts="$(grep -m1 -E '^ +all: ' "$FLINK_HOME/conf/config.yaml" | sed -E 's/^ +all: //')"
    sed -e "s|@REST_PORT@|$REST_PORT|" -e "s|@RPC_PORT@|$RPC_PORT|" \
        -e "s|@VENV_PY@|$VENV/bin/python|g" -e "s|@WORK@|$dir|g" \
        -e "s|@JAVA_OPTS_ALL@|$javaopts|" \
        "$HERE/config.yaml.in" >"$dir/conf/config.yaml"
    cp "$FLINK_HOME"/conf/log4j*.properties "$FLINK_HOME"/conf/logback*.xml "$dir/conf/"
    echo 127.0.0.1 >"$dir/conf/workers"
    echo "127.0.0.1:$REST_PORT" >"$dir/conf/masters"
    rm -f "$dir/pids/"*.pid
    start_jm "$dir"
    $NICE "$FLINK_HOME/bin/taskmanager.sh" start >>"$dir/log/daemon-scripts.out" 2>&1
    TM_PID="$(pid_of "$dir" taskexecutor)" || die "no TaskManager PID file"
    write_env "$dir"
    if ! wait_rest "$dir" "http://127.0.0.1:$REST_PORT" 120; then
        tail -n 30 "$dir"/log/*.log >&2 || true
        die "cluster did not come up (see $dir/log)"
    fi
    log "cluster up: REST http://127.0.0.1:$REST_PORT, JobManager PID $JM_PID, TaskManager PID $TM_PID"
    echo "http://127.0.0.1:$REST_PORT"
}

descendants() { # pid -> its descendant PIDs, deepest last
    local p c
    for c in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

kill_tree() { # pid...: SIGTERM the processes and their descendants, wait, then SIGKILL what is left
    local all=() p i
    for p in "$@"; do
        [ -n "$p" ] || continue
        kill -0 "$p" 2>/dev/null || continue
        all+=("$p")
        # shellcheck disable=SC2207
        all+=($(descendants "$p"))
    done
    [ "${#all[@]}" -gt 0 ] || return 0
    kill -TERM "${all[@]}" 2>/dev/null || true
    for ((i = 0; i < 120; i++)); do
        local alive=0
        for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.25
    done
    log "SIGKILL ${all[*]}"
    kill -KILL "${all[@]}" 2>/dev/null || true
}

cmd_stop() {
    local dir="${1:?usage: stop DIR}"
    dir="$(cd "$dir" && pwd)"
    [ -f "$dir/env" ] || { log "nothing to stop in $dir"; return 0; }
    . "$dir/env"
    kill_tree "${TM_PID:-}" "${JM_PID:-}"
    rm -f "$dir/pids/"*.pid
    log "stopped (JobManager $JM_PID, TaskManager $TM_PID)"
}

cmd_jm_restart() {
    local dir="${1:?usage: jm-restart DIR}"
    dir="$(cd "$dir" && pwd)"
    load_env "$dir"
    local old="$JM_PID"
    # Its CPU until now, for the test's totals (the new one starts from 0).
    python3 "$HERE/record.py" cpu "$JM_PID" $(descendants "$JM_PID") >>"$dir/jm_cpu_before_restart" 2>/dev/null || true
    kill_tree "$JM_PID"
    log "JobManager $old stopped"
    start_jm "$dir"
    write_env "$dir"
    if [ "${FLINK_IT_WAIT_TM:-1}" = 0 ]; then
        local i
        for ((i = 0; i < 720; i++)); do
            curl -fsS --max-time 2 "$FLINK_REST_URL/overview" >/dev/null 2>&1 && break
            sleep 0.25
        done
        curl -fsS --max-time 2 "$FLINK_REST_URL/overview" >/dev/null 2>&1 ||
            die "JobManager REST did not come back (see $dir/log)"
    elif ! wait_rest "$dir" "$FLINK_REST_URL" 180; then
        die "JobManager did not come back with a TaskManager (see $dir/log)"
    fi
    log "JobManager restarted: PID $JM_PID"
}

cmd_submit() {
    local dir="${1:?usage: submit DIR SCENARIO}" scenario="${2:?usage: submit DIR SCENARIO}"
    dir="$(cd "$dir" && pwd)"
    case " $SCENARIOS " in *" $scenario "*) ;; *) die "unknown scenario $scenario (one of: $SCENARIOS)" ;; esac
    load_env "$dir"
    local out="$dir/timeline/submit-$scenario.log"
    mkdir -p "$dir/timeline"
    if ! /usr/bin/time -f "%e %U %S" -o "$dir/timeline/submit-$scenario.time" \
        $NICE "$FLINK_HOME/bin/flink" run -d \
        -py "$HERE/scenario_job.py" "$scenario" "$dir" >"$out" 2>&1; then
        tail -n 40 "$out" >&2
        die "submission of $scenario failed (see $out)"
    fi
    local jid
    jid="$(grep -oE 'JobID [0-9a-f]{32}|ALERTKIT_JOB_ID=[0-9a-f]{32}' "$out" | grep -oE '[0-9a-f]{32}' | head -n 1)" ||
        die "no job id in $out"
    echo "$jid"
}

recorder_opts() {
    case "$1" in
    fail_no_restart | fail_fixed_delay) echo "--max 120 --linger 6" ;;
    fail_once_recover | fast_restart) echo "--cancel-after-running 8 --after-restart --max 90 --linger 4" ;;
    run_forever) echo "--cancel-after-running 8 --max 60 --linger 4" ;;
    finish) echo "--max 60 --linger 5" ;;
    checkpoint_fail) echo "--cancel-after-ckpt-failures 4 --max 60 --linger 4" ;;
    checkpoint_bad_dir) echo "--max 40 --linger 5" ;;
    esac
}

cpu_of_cluster() {
    python3 "$HERE/record.py" cpu "$JM_PID" "$TM_PID" $(descendants "$TM_PID") $(descendants "$JM_PID")
}

cmd_record() {
    local dir="${1:?usage: record DIR SCENARIO}" scenario="${2:?usage: record DIR SCENARIO}"
    dir="$(cd "$dir" && pwd)"
    if [ "$scenario" = jm_restart ]; then
        cmd_record_jm_restart "$dir"
        return
    fi
    load_env "$dir"
    local tl="$dir/timeline" t0 t1 c0 c1 rpid jid
    mkdir -p "$tl"
    c0="$(cpu_of_cluster)"
    t0="$(date +%s.%N)"
    # shellcheck disable=SC2046
    /usr/bin/time -f "%e %U %S" -o "$tl/$scenario.recorder.time" \
        python3 "$HERE/record.py" job --rest "$FLINK_REST_URL" --out "$tl/$scenario.jsonl" \
        --wait-submit 150 $(recorder_opts "$scenario") >"$tl/$scenario.jid" 2>"$tl/$scenario.log" &
    rpid=$!
    sleep 0.5
    if jid="$(cmd_submit "$dir" "$scenario")"; then
        log "$scenario submitted as $jid; recording"
    elif [ "$scenario" = checkpoint_bad_dir ]; then
        # Expected: the JobManager cannot create the checkpoint storage, the job is
        # FAILED at once and `flink run` fails; the recorder finds the job itself.
        log "$scenario: flink run failed as expected; recording the job it left behind"
    else
        kill "$rpid" 2>/dev/null || true
        wait "$rpid" 2>/dev/null || true
        die "submit failed"
    fi
    wait "$rpid" || log "recorder exited with $?"
    jid="$(tail -n 1 "$tl/$scenario.jid")"
    t1="$(date +%s.%N)"
    c1="$(cpu_of_cluster)"
    python3 "$HERE/record.py" summarize "$tl/$scenario.jsonl" >"$tl/$scenario.summary.json"
    python3 - "$scenario" "$jid" "$t0" "$t1" "$c0" "$c1" "$tl" <<'EOF' | tee -a "$tl/costs.tsv"
import sys
sc, jid, t0, t1, c0, c1, tl = sys.argv[1:]
sub = open("%s/submit-%s.time" % (tl, sc)).read().split()
rec = open("%s/%s.recorder.time" % (tl, sc)).read().split()[-3:]
client = float(sub[-2]) + float(sub[-1])
cluster = float(c1) - float(c0)
recorder = float(rec[1]) + float(rec[2])
print("%s\t%s\twall=%.1fs\tsubmit_wall=%.1fs\tclient_cpu=%.1fs\tcluster_cpu=%.1fs\trecorder_cpu=%.1fs\ttotal_cpu=%.1fs"
      % (sc, jid, float(t1) - float(t0), float(sub[-3]), client, cluster, recorder, client + cluster + recorder))
EOF
}

cmd_record_jm_restart() {
    local dir="$1" jid rpid t0 t1 c0 cjm ctm c1 sub
    dir="$(cd "$dir" && pwd)"
    load_env "$dir"
    t0="$(date +%s.%N)"
    c0="$(cpu_of_cluster)"
    jid="$(cmd_submit "$dir" run_forever)"
    log "run_forever $jid submitted for the JobManager restart"
    local i
    for ((i = 0; i < 120; i++)); do
        curl -fsS "$FLINK_REST_URL/jobs/$jid/status" 2>/dev/null | grep -q RUNNING && break
        sleep 0.5
    done
    python3 "$HERE/record.py" cluster --rest "$FLINK_REST_URL" --jid "$jid" --seconds 120 \
        --out "$dir/timeline/jm_restart.jsonl" 2>"$dir/timeline/jm_restart.log" &
    rpid=$!
    sleep 3
    date +%s%3N >"$dir/timeline/jm_restart.kill_ms"
    cjm="$(python3 "$HERE/record.py" cpu "$JM_PID" $(descendants "$JM_PID"))"
    cmd_jm_restart "$dir"
    date +%s%3N >"$dir/timeline/jm_restart.back_ms"
    wait "$rpid" || true
    t1="$(date +%s.%N)"
    . "$dir/env"
    c1="$(cpu_of_cluster)"
    sub="$(tail -n 1 "$dir/timeline/submit-run_forever.time")"
    python3 "$HERE/record.py" summarize "$dir/timeline/jm_restart.jsonl" >"$dir/timeline/jm_restart.summary.json"
    # cluster CPU: old JobManager until it was stopped + new JobManager + TaskManager delta
    python3 - "$jid" "$t0" "$t1" "$c0" "$cjm" "$c1" "$sub" <<'EOF' | tee -a "$dir/timeline/costs.tsv"
import sys
jid, t0, t1, c0, cjm, c1, sub = sys.argv[1:]
e, u, s = (float(x) for x in sub.split()[-3:])
cluster = float(cjm) + float(c1) - float(c0)
print("jm_restart\t%s\twall=%.1fs\tsubmit_wall=%.1fs\tclient_cpu=%.1fs\tcluster_cpu=%.1fs\ttotal_cpu=%.1fs"
      % (jid, float(t1) - float(t0), e, u + s, cluster, u + s + cluster))
EOF
}

cmd_all() {
    local dir="${1:?usage: all DIR}" s t0
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    t0="$(date +%s.%N)"
    local cpu0
    cpu0="$(python3 -c 'import os; t = os.times(); print(t.children_user + t.children_system)')"
    cmd_install
    cmd_start "$dir" >/dev/null
    trap 'cmd_stop "$dir"' EXIT
    rm -f "$dir/timeline/costs.tsv"
    for s in ${FLINK_IT_SCENARIOS:-$SCENARIOS}; do
        (cmd_record "$dir" "$s") || log "scenario $s did not complete"
    done
    (cmd_record_jm_restart "$dir") || log "JobManager restart did not complete"
    . "$dir/env"
    local cluster_cpu
    cluster_cpu="$(cpu_of_cluster)"
    cmd_stop "$dir"
    trap - EXIT
    python3 -c "import sys; print('total\twall=%.1fs' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$(date +%s.%N)" | tee -a "$dir/timeline/costs.tsv"
    log "JobManager CPU since its restart + TaskManager CPU at stop: ${cluster_cpu}s (per-scenario figures in $dir/timeline/costs.tsv)"
}

cmd_test() {
    local dir="${1:-$ROOT/target/flink-it-test}" t0 rc=0
    t0="$(date +%s.%N)"
    cmd_install
    log "building the real-Flink test"
    (cd "$ROOT" && nice -n 15 \
        cargo test --all-features --test flink_real --no-run) >&2
    if [ -f "$dir/env" ]; then cmd_stop "$dir"; fi
    rm -rf "$dir"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    cmd_start "$dir" >/dev/null
    trap 'cmd_stop "$dir"' EXIT
    . "$dir/env"
    (cd "$ROOT" && FLINK_REST_URL="$FLINK_REST_URL" FLINK_IT_DIR="$dir" FLINK_IT_SCRIPT="$ROOT/scripts/flink-it.sh" \
        nice -n 15 \
        cargo test --all-features --test flink_real -- --ignored --test-threads=1 --nocapture) || rc=$?
    . "$dir/env"
    local cluster_cpu
    cluster_cpu="$(cpu_of_cluster 2>/dev/null || echo 0)"
    cluster_cpu="$(python3 -c 'import sys; print("%.1f" % sum(float(x) for x in sys.argv[1:] if x))' \
        "$cluster_cpu" $(cat "$dir/jm_cpu_before_restart" 2>/dev/null))"
    cmd_stop "$dir"
    trap - EXIT
    # `times` in this shell (not a subshell): CPU of every child waited for
    # (cargo, the test, the `flink run` clients it started, curl, ...).
    times >"$dir/times.txt"
    python3 - "$t0" "$(date +%s.%N)" "$cluster_cpu" "$(tail -n 1 "$dir/times.txt")" <<'EOF'
import re, sys
def secs(s):
    m = re.match(r"(\d+)m([\d.]+)s", s)
    return int(m.group(1)) * 60 + float(m.group(2))
u, s = sys.argv[4].split()
print("flink-it test: wall %.1fs; CPU of the build check, the test and the job submissions %.1fs; "
      "CPU of the JobManager (both runs) and the TaskManager with its Python workers %ss"
      % (float(sys.argv[2]) - float(sys.argv[1]), secs(u) + secs(s), sys.argv[3]), file=sys.stderr)
EOF
    return "$rc"
}

case "${1:-}" in
install) cmd_install ;;
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
submit) shift; cmd_submit "$@" ;;
jm-restart) shift; cmd_jm_restart "$@" ;;
record) shift; cmd_record "$@" ;;
all) shift; cmd_all "$@" ;;
test) shift; cmd_test "$@" ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
