#!/usr/bin/env bash
# The test command of README.md: installs and starts what the tests need,
# then runs every test (unit, integration, doc) with every feature.
# Tests talk to 127.0.0.1 only; the fake platforms are in-process.
set -euo pipefail
cd "$(dirname "$0")/.."

# The email tests run against a real SMTP server (aiosmtpd) they start on
# 127.0.0.1; the IM platform fakes run in-process.
if ! python3 -c "import aiosmtpd" 2>/dev/null; then
    echo "installing aiosmtpd (PyPI) for the email tests"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "aiosmtpd==1.4.6" \
        || python3 -m pip install --quiet --user "aiosmtpd==1.4.6"
fi
python3 -c "import aiosmtpd" || { echo "aiosmtpd is required for the email tests" >&2; exit 1; }

# The shared-state tests start a real redis-server on 127.0.0.1.
if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (Debian) for the shared-state tests"
    export DEBIAN_FRONTEND=noninteractive
    SUDO=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -E"; fi
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
fi
command -v redis-server >/dev/null || { echo "redis-server is required for the shared-state tests" >&2; exit 1; }
# Installing the package may start a system instance; the tests start their own.

cargo test --all-features --all-targets
cargo test --all-features --doc

# Email against a real Postfix 3.7 + Dovecot SASL on 127.0.0.1 (installed
# from Debian when missing, configured under target/, stopped by PID).
scripts/postfix-it.sh test target/postfix-it

# The Flink watcher against a real Flink 2.3 standalone cluster on 127.0.0.1
# (Java from Debian and apache-flink from PyPI when missing; every scenario
# of issue 16; the cluster stopped by PID).
scripts/flink-it.sh test
