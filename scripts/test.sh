#!/usr/bin/env bash
# The test command of README.md: installs and starts what the tests need,
# then runs every test (unit, integration, doc) with every feature.
# Tests talk to 127.0.0.1 only; the fake platforms are in-process.
set -euo pipefail
cd "$(dirname "$0")/.."

# Nothing outside cargo is needed yet: the DingTalk fakes run in-process.
# (The email and redis work will install aiosmtpd / redis-server here.)

cargo test --all-features --all-targets
cargo test --all-features --doc
