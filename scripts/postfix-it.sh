#!/usr/bin/env bash
# A real Postfix + Dovecot SASL on 127.0.0.1 for alertkit's email integration
# tests (issue #18, "Email against a real MTA").
#
#   scripts/postfix-it.sh start   [DIR]  install if needed, configure, start, write DIR/env
#   scripts/postfix-it.sh stop    [DIR]  stop Postfix and Dovecot of DIR (by PID), nothing left running
#   scripts/postfix-it.sh restart [DIR]  stop + start (new ports)
#   scripts/postfix-it.sh status  [DIR]  exit 0 when both are running
#   scripts/postfix-it.sh check   [DIR]  smoke test with Python's smtplib (stdlib only)
#   scripts/postfix-it.sh burst   [DIR] [-n 500] [--mode submission|smtps|plain]
#                                        smtplib baseline: N alert mails over one connection
#   scripts/postfix-it.sh test    [DIR]  start, check, alertkit's email tests against it
#                                        (tests/postfix.rs) and the smtplib baseline, stop
#
# DIR defaults to <repo>/target/postfix-it. Everything (config, queue, data,
# Maildirs, TLS, logs, Dovecot's base_dir) lives under DIR; the system's
# /etc/postfix and /etc/dovecot are not changed (Postfix only reads its package
# files postfix-files and dynamicmaps.cf from /etc/postfix). Nothing can leave
# the machine: no relayhost, every non-virtual transport is error:, and every
# listener is on 127.0.0.1.
#
# DIR/env (KEY=VALUE, one a line, no quoting, values never contain spaces or
# '=') and DIR/env.json (the same keys) describe the running instance; see
# write_env below for the keys.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
TPL="$SCRIPT_DIR/postfix"
DEFAULT_DIR="$SCRIPT_DIR/../target/postfix-it"
PY="${PYTHON:-python3}"

die() { echo "postfix-it: error: $*" >&2; exit 1; }
log() { echo "postfix-it: $*" >&2; }

usage() {
    sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[ $# -ge 1 ] || usage
CMD="$1"; shift
DIR_ARG="${1:-$DEFAULT_DIR}"
[ $# -ge 1 ] && shift

case "$CMD" in
    start|stop|restart|status|check|burst|test) ;;
    -h|--help|help) usage ;;
    *) echo "postfix-it: unknown command '$CMD'" >&2; usage ;;
esac

if [ "$(id -u)" != 0 ]; then
    case "$CMD" in
        check|burst) ;;   # clients only: no root needed
        *)
            if command -v sudo >/dev/null 2>&1; then
                exec sudo -E "${BASH_SOURCE[0]}" "$CMD" "$DIR_ARG" "$@"
            fi
            die "'$CMD' needs root (Postfix's master and Dovecot run as root, then drop privileges)"
            ;;
    esac
fi

mkdir -p "$DIR_ARG"
DIR="$(cd "$DIR_ARG" && pwd -P)"
case "$DIR" in
    *[[:space:]]*|*,*|*=*|*\"*|*\'*|*'$'*|*'@'*) die "DIR must not contain spaces, ',', '=', quotes, '\$' or '@': '$DIR'" ;;
esac

ETC="$DIR/etc"
DOVE="$DIR/dovecot"
ENV_FILE="$DIR/env"
POSTFIX_PID_FILE="$DIR/spool/pid/master.pid"
DOVECOT_PID_FILE="$DOVE/run/master.pid"
USER_NAME="alert@example.test"

pid_alive() { # running and not a zombie (an unreaped zombie still answers kill -0)
    [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null || return 1
    local st; st="$( { cat "/proc/$1/stat"; } 2>/dev/null || true)"
    st="${st##*) }"
    [ -n "$st" ] && [ "${st:0:1}" != "Z" ] && [ "${st:0:1}" != "X" ]
}
read_pid() { [ -f "$1" ] && tr -dc '0-9' <"$1" || true; }

# Is PID a live process of THIS instance? (Guards against stale pid files whose
# number now belongs to something else.) Postfix programs inherit
# MAIL_CONFIG=$ETC from `postfix -c`; Dovecot's run in its base_dir ($DOVE/run).
instance_kind() {
    local pid="$1" exe cwd
    pid_alive "$pid" || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
    case "$exe" in
        /usr/lib/postfix/*|/usr/sbin/post*)
            { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "MAIL_CONFIG=$ETC" \
                && { echo postfix; return 0; }
            ;;
        /usr/sbin/dovecot|/usr/lib/dovecot/*)
            cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
            case "$cwd" in
                "$DOVE/run"|"$DOVE/run/"*) echo dovecot; return 0 ;;
            esac
            ;;
    esac
    return 1
}

postfix_pid() {
    local p; p="$(read_pid "$POSTFIX_PID_FILE")"
    if [ -n "$p" ] && [ "$(instance_kind "$p" || true)" = postfix ]; then echo "$p"; fi
}
dovecot_pid() {
    local p; p="$(read_pid "$DOVECOT_PID_FILE")"
    if [ -n "$p" ] && [ "$(instance_kind "$p" || true)" = dovecot ]; then echo "$p"; fi
}

# ---------------------------------------------------------------- install

install_packages() {
    local missing=()
    command -v postfix >/dev/null 2>&1 && [ -x /usr/lib/postfix/sbin/master ] || missing+=(postfix)
    command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-core)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them (Debian/Ubuntu expected)"
    log "installing ${missing[*]} (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    # "No configuration": Debian writes no /etc/postfix/main.cf; we never use it anyway.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
    command -v postfix >/dev/null 2>&1 || die "postfix still missing after install"
    command -v dovecot >/dev/null 2>&1 || die "dovecot still missing after install"
}

check_prereqs() {
    command -v "$PY" >/dev/null 2>&1 || die "python3 is required (set PYTHON=... to choose one)"
    getent passwd postfix >/dev/null || die "user 'postfix' missing (broken postfix package?)"
    getent group postdrop >/dev/null || die "group 'postdrop' missing (broken postfix package?)"
    getent passwd dovecot >/dev/null || die "user 'dovecot' missing (broken dovecot-core package?)"
    getent passwd dovenull >/dev/null || die "user 'dovenull' missing (broken dovecot-core package?)"
    # postfix (smtpd) and dovecot (auth) must be able to reach DIR.
    local d="$DIR"
    while [ "$d" != "/" ]; do
        local mode; mode="$(stat -c '%A' "$d")"
        [ "${mode:9:1}" = "x" ] || [ "${mode:9:1}" = "t" ] \
            || die "'$d' is not world-searchable (mode $mode); the postfix and dovecot users must reach $DIR"
        d="$(dirname "$d")"
    done
}

# ---------------------------------------------------------------- ports, password, TLS

free_ports() {
    # N distinct ports that are free on 127.0.0.1 right now (bound together, then released).
    "$PY" - "$1" <<'EOF'
import socket, sys
n = int(sys.argv[1]); socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
EOF
}

make_password() {
    local f="$DOVE/password"
    if [ ! -s "$f" ]; then
        "$PY" -c 'import secrets; print("it-" + secrets.token_hex(12))' >"$f"
        chmod 600 "$f"
    fi
    PASSWORD="$(cat "$f")"
    umask 027
    printf '%s:{PLAIN}%s\n' "$USER_NAME" "$PASSWORD" >"$DOVE/passwd"
    umask 022
    chown root:dovecot "$DOVE/passwd"
    chmod 640 "$DOVE/passwd"
}

cert_ok() { [ -s "$1" ] && openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1; }

make_tls() {
    local t="$DIR/tls"
    mkdir -p "$t"
    if cert_ok "$t/ca.crt" && cert_ok "$t/localhost.crt" && cert_ok "$t/wronghost.crt" \
        && openssl verify -CAfile "$t/ca.crt" "$t/localhost.crt" >/dev/null 2>&1; then
        return 0
    fi
    log "generating a test CA and leaf certificates in $t"
    rm -f "$t"/*.crt "$t"/*.key "$t"/*.csr "$t"/*.srl "$t"/*.ext
    (
        set -e
        cd "$t"
        umask 077
        openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 825 \
            -keyout ca.key -out ca.crt -subj "/O=alertkit tests/CN=alertkit postfix-it CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -addext "subjectKeyIdentifier=hash" 2>/dev/null
        leaf() { # name CN SAN
            openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" \
                -subj "/O=alertkit tests/CN=$2" 2>/dev/null
            printf '%s\n' \
                "basicConstraints=critical,CA:FALSE" \
                "keyUsage=critical,digitalSignature,keyEncipherment" \
                "extendedKeyUsage=serverAuth" \
                "subjectAltName=$3" \
                "subjectKeyIdentifier=hash" \
                "authorityKeyIdentifier=keyid,issuer" >"$1.ext"
            openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
                -days 825 -sha256 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
            rm -f "$1.csr" "$1.ext"
        }
        leaf localhost localhost "DNS:localhost,IP:127.0.0.1"
        leaf wronghost wrong.example "DNS:wrong.example"
        rm -f ca.srl
        chmod 644 ca.crt localhost.crt wronghost.crt
        chmod 600 ca.key localhost.key wronghost.key
    ) || die "openssl failed to generate the test certificates"
    openssl verify -CAfile "$t/ca.crt" "$t/localhost.crt" >/dev/null || die "generated leaf does not verify against the CA"
}

# ---------------------------------------------------------------- config

render() { # template output
    sed -e "s|@DIR@|$DIR|g" \
        -e "s|@SMTP_PORT@|$SMTP_PORT|g" \
        -e "s|@SUBMISSION_PORT@|$SUBMISSION_PORT|g" \
        -e "s|@SMTPS_PORT@|$SMTPS_PORT|g" \
        -e "s|@SUBMISSION_WRONGHOST_PORT@|$SUBMISSION_WRONGHOST_PORT|g" \
        -e "s|@SMTPS_WRONGHOST_PORT@|$SMTPS_WRONGHOST_PORT|g" \
        -e "s|@VMAIL_UID@|$VMAIL_UID|g" \
        -e "s|@VMAIL_GID@|$VMAIL_GID|g" \
        "$1" >"$2.tmp"
    mv "$2.tmp" "$2"
}

write_config() {
    umask 022
    mkdir -p "$ETC" "$DIR/spool" "$DIR/data" "$DIR/mail" "$DOVE/run" "$DOVE/state"
    chown root:root "$DIR" "$ETC" "$DIR/spool"
    chmod 755 "$DIR" "$ETC" "$DIR/spool" "$DOVE"
    chown postfix:postfix "$DIR/data"; chmod 700 "$DIR/data"

    # Virtual mail is delivered as nobody unless VMAIL_UID/VMAIL_GID say otherwise
    # (Postfix refuses uids below virtual_minimum_uid = 100, so never root).
    VMAIL_UID="${VMAIL_UID:-$(id -u nobody)}"
    VMAIL_GID="${VMAIL_GID:-$(getent group nogroup >/dev/null && getent group nogroup | cut -d: -f3 || id -g nobody)}"
    [ "$VMAIL_UID" -ge 100 ] || die "VMAIL_UID must be >= 100 (got $VMAIL_UID)"
    chown "$VMAIL_UID:$VMAIL_GID" "$DIR/mail"; chmod 755 "$DIR/mail"

    local ports
    read -r SMTP_PORT SUBMISSION_PORT SMTPS_PORT SUBMISSION_WRONGHOST_PORT SMTPS_WRONGHOST_PORT \
        <<<"$(free_ports 5)" || die "could not find free ports on 127.0.0.1"
    [ -n "$SMTPS_WRONGHOST_PORT" ] || die "could not find free ports on 127.0.0.1"

    render "$TPL/main.cf.in" "$ETC/main.cf"
    render "$TPL/master.cf.in" "$ETC/master.cf"
    install -m 644 "$TPL/vmailbox" "$ETC/vmailbox"
    install -m 644 "$TPL/recipient_access" "$ETC/recipient_access"
    render "$TPL/dovecot.conf.in" "$DOVE/dovecot.conf"
    chmod 644 "$ETC/main.cf" "$ETC/master.cf" "$DOVE/dovecot.conf"
    make_password
    make_tls
    touch "$DIR/maillog"
}

write_env() {
    local ppid dpid
    ppid="$(postfix_pid)"; dpid="$(dovecot_pid)"
    cat >"$ENV_FILE.tmp" <<EOF
POSTFIX_IT_DIR=$DIR
POSTFIX_IT_HOST=127.0.0.1
POSTFIX_IT_TLS_NAME=localhost
POSTFIX_IT_SMTP_PORT=$SMTP_PORT
POSTFIX_IT_SUBMISSION_PORT=$SUBMISSION_PORT
POSTFIX_IT_SMTPS_PORT=$SMTPS_PORT
POSTFIX_IT_SUBMISSION_WRONGHOST_PORT=$SUBMISSION_WRONGHOST_PORT
POSTFIX_IT_SMTPS_WRONGHOST_PORT=$SMTPS_WRONGHOST_PORT
POSTFIX_IT_WRONGHOST_NAME=wrong.example
POSTFIX_IT_USER=$USER_NAME
POSTFIX_IT_PASSWORD=$PASSWORD
POSTFIX_IT_CA_FILE=$DIR/tls/ca.crt
POSTFIX_IT_DOMAIN=example.test
POSTFIX_IT_RCPT_OK=ops@example.test,lead@example.test,a@example.test,b@example.test
POSTFIX_IT_RCPT_REJECT=reject@example.test
POSTFIX_IT_RCPT_TEMPFAIL=grey@example.test
POSTFIX_IT_RCPT_UNKNOWN=unknown@example.test
POSTFIX_IT_MAIL_ROOT=$DIR/mail
POSTFIX_IT_MAILDIR_TEMPLATE=$DIR/mail/example.test/{local}
POSTFIX_IT_CONN_LIMIT=10
POSTFIX_IT_MAILLOG=$DIR/maillog
POSTFIX_IT_DOVECOT_LOG=$DOVE/dovecot.log
POSTFIX_IT_POSTFIX_CONFIG_DIR=$ETC
POSTFIX_IT_POSTFIX_PID=$ppid
POSTFIX_IT_DOVECOT_PID=$dpid
EOF
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    chmod 644 "$ENV_FILE"
    "$PY" - "$ENV_FILE" "$DIR/env.json" <<'EOF'
import json, sys
env = dict(l.rstrip("\n").split("=", 1) for l in open(sys.argv[1]) if "=" in l)
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump(env, f, indent=2); f.write("\n")
import os; os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
}

load_env() {
    [ -f "$ENV_FILE" ] || die "$ENV_FILE not found: run 'scripts/postfix-it.sh start $DIR' first"
    local k v
    while IFS='=' read -r k v; do
        case "$k" in POSTFIX_IT_*) export "$k=$v" ;; esac
    done <"$ENV_FILE"
}

# ---------------------------------------------------------------- start / stop

wait_for() { # seconds description command...
    local secs="$1" what="$2"; shift 2
    local i
    for ((i = 0; i < secs * 10; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    return 1
}

port_open() {
    "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1"
}

do_start() {
    install_packages
    check_prereqs
    if [ -n "$(postfix_pid)" ] && [ -n "$(dovecot_pid)" ] && [ -f "$ENV_FILE" ]; then
        load_env
        if port_open "$POSTFIX_IT_SMTP_PORT" && [ -S "$DOVE/auth-postfix" ]; then
            log "already running (postfix $(postfix_pid), dovecot $(dovecot_pid)); env: $ENV_FILE"
            cat "$ENV_FILE"
            return 0
        fi
    fi
    # Partly running or stale: start from a clean state.
    do_stop quiet

    write_config

    # Dovecot first: Postfix's smtpd connects to its auth socket.
    # Daemons get /dev/null and a log file as stdio, so a caller reading this
    # script's output through a pipe is not kept waiting by them, and do not
    # inherit the lock (fd 9).
    dovecot -c "$DOVE/dovecot.conf" </dev/null >>"$DOVE/dovecot-start.log" 2>&1 9>&- \
        || die "dovecot failed to start; see $DOVE/dovecot-start.log, $DOVE/dovecot.log and: doveconf -c $DOVE/dovecot.conf -n"
    wait_for 15 "dovecot auth socket" test -S "$DOVE/auth-postfix" \
        || { tail -n 20 "$DOVE/dovecot.log" >&2 || true; die "dovecot's auth socket $DOVE/auth-postfix did not appear"; }

    postfix -c "$ETC" check </dev/null >>"$DIR/postfix-check.log" 2>&1 \
        || { cat "$DIR/postfix-check.log" >&2; die "postfix -c $ETC check failed"; }
    postfix -c "$ETC" start </dev/null >>"$DIR/postfix-start.log" 2>&1 9>&- \
        || { tail -n 20 "$DIR/postfix-start.log" "$DIR/maillog" >&2 || true; die "postfix -c $ETC start failed"; }
    local p
    for p in "$SMTP_PORT" "$SUBMISSION_PORT" "$SMTPS_PORT" "$SUBMISSION_WRONGHOST_PORT" "$SMTPS_WRONGHOST_PORT"; do
        wait_for 15 "port $p" port_open "$p" \
            || { tail -n 20 "$DIR/maillog" >&2 || true; die "postfix is not listening on 127.0.0.1:$p"; }
    done
    [ -n "$(postfix_pid)" ] || die "postfix master is not running (see $DIR/maillog)"
    [ -n "$(dovecot_pid)" ] || die "dovecot master is not running (see $DOVE/dovecot.log)"

    write_env
    log "running: postfix pid $(postfix_pid), dovecot pid $(dovecot_pid); env: $ENV_FILE"
    cat "$ENV_FILE"
}

# PIDs of every process of this instance still alive (see instance_kind), so
# that nothing is left after stop, even when a master died without taking its
# children down.
instance_leftovers() {
    local d pid
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        [ "$pid" = "$$" ] && continue
        case "$(readlink "$d/exe" 2>/dev/null || true)" in
            /usr/lib/postfix/*|/usr/sbin/post*|/usr/sbin/dovecot|/usr/lib/dovecot/*)
                instance_kind "$pid" >/dev/null && echo "$pid" ;;
        esac
    done
    return 0
}

kill_and_wait() { # pid... : TERM the live ones, wait up to 10 s, then KILL
    local pid i live=()
    for pid in "$@"; do pid_alive "$pid" && live+=("$pid"); done
    [ ${#live[@]} -eq 0 ] && return 0
    kill -TERM "${live[@]}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        local alive=0
        for pid in "${live[@]}"; do pid_alive "$pid" && alive=1; done
        [ $alive = 0 ] && return 0
        sleep 0.1
    done
    for pid in "${live[@]}"; do
        if pid_alive "$pid"; then
            log "process $pid did not stop on SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
}

do_stop() {
    local quiet="${1:-}"
    local pp dp i
    pp="$(postfix_pid)"; dp="$(dovecot_pid)"
    # Signal both at once (each takes a second or two to wind down), then wait.
    if [ -n "$pp" ]; then
        postfix -c "$ETC" stop </dev/null >>"$DIR/postfix-start.log" 2>&1 || kill -TERM "$pp" 2>/dev/null || true
    fi
    if [ -n "$dp" ]; then
        kill -TERM "$dp" 2>/dev/null || true
    fi
    for ((i = 0; i < 150; i++)); do
        pid_alive "$pp" || pid_alive "$dp" || break
        sleep 0.1
    done
    # Still there after 15 s: TERM again, then KILL.
    # shellcheck disable=SC2086
    kill_and_wait $pp $dp
    # Anything the masters left behind (they normally take their children down).
    local left; left="$(instance_leftovers)"
    # shellcheck disable=SC2086
    kill_and_wait $left
    # Best effort: give init a moment to reap the (already dead) daemonized
    # masters, so that `pgrep dovecot` does not show a <defunct> entry.
    for ((i = 0; i < 50; i++)); do
        { [ -n "$pp" ] && [ -e "/proc/$pp" ]; } || { [ -n "$dp" ] && [ -e "/proc/$dp" ]; } || break
        sleep 0.1
    done
    rm -f "$DOVECOT_PID_FILE"
    [ -z "$quiet" ] && log "stopped (dir $DIR)"
    return 0
}

do_status() {
    local pp dp
    pp="$(postfix_pid)"; dp="$(dovecot_pid)"
    echo "postfix: ${pp:-not running}"
    echo "dovecot: ${dp:-not running}"
    local left; left="$(instance_leftovers | tr '\n' ' ')"
    echo "processes of $DIR: ${left:-none}"
    [ -n "$pp" ] && [ -n "$dp" ]
}

# One start/stop at a time per DIR (test binaries may call start concurrently;
# the second one waits, then finds the instance running and reuses it).
case "$CMD" in
    start|stop|restart)
        if command -v flock >/dev/null 2>&1; then
            exec 9>"$DIR/.lock"
            flock -w 120 9 || die "timed out waiting for the lock $DIR/.lock"
        fi
        ;;
esac

case "$CMD" in
    start) do_start ;;
    stop) do_stop ;;
    restart) do_stop quiet; do_start ;;
    status) do_status ;;
    check) [ -f "$ENV_FILE" ] || die "$ENV_FILE not found: run 'scripts/postfix-it.sh start $DIR' first"
           exec "$PY" "$TPL/check.py" "$ENV_FILE" ;;
    burst) [ -f "$ENV_FILE" ] || die "$ENV_FILE not found: run 'scripts/postfix-it.sh start $DIR' first"
           exec "$PY" "$TPL/burst.py" --env "$ENV_FILE" "$@" ;;
    test)
        # Whatever happens below, the servers are stopped (by PID).
        trap '"${BASH_SOURCE[0]}" stop "$DIR" >/dev/null 2>&1 || true' EXIT
        "${BASH_SOURCE[0]}" start "$DIR"
        "$PY" "$TPL/check.py" "$ENV_FILE"
        (cd "$SCRIPT_DIR/.." && POSTFIX_IT_ENV="$ENV_FILE" cargo test --all-features --test postfix \
            -- --ignored --test-threads=1 --nocapture)
        echo "smtplib baseline (one connection, STARTTLS + AUTH):"
        "$PY" "$TPL/burst.py" --env "$ENV_FILE" -n 500
        ;;
esac
