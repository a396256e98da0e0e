#!/usr/bin/env bash
# The whole test suite, from nothing: installs the tools the tests drive (promtool,
# systemd-analyze, chromium), installs and starts the local servers (scripts/services.sh)
# and the replica, Galera and solo topologies (scripts/cluster.sh), then runs formatting, lints and
# every test against them. Servers this script started are stopped again on exit, also on
# failure; servers that were already running are left running.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

started_here=0 cluster_started_here=0
scripts/services.sh status >/dev/null 2>&1 || started_here=1
scripts/cluster.sh status >/dev/null 2>&1 || cluster_started_here=1
cleanup() {
  [ $cluster_started_here = 1 ] && scripts/cluster.sh down || true
  [ $started_here = 1 ] && scripts/services.sh down || true
}
trap cleanup EXIT

# Tools some tests drive: promtool (alert rules), systemd-analyze (the unit), chromium (the
# worker's status page in a real browser).
LOG_PREFIX=test
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
command -v promtool >/dev/null && command -v systemd-analyze >/dev/null && command -v chromium >/dev/null \
  || apt_install prometheus systemd chromium

scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"
scripts/cluster.sh up replica
scripts/cluster.sh up galera
scripts/cluster.sh up solo
eval "$(scripts/cluster.sh test-env)"

step() { printf '\n==> %s\n' "$*"; }
step "cargo fmt --all --check";                     cargo fmt --all --check
step "cargo clippy --workspace --all-targets -- -D warnings"; cargo clippy --workspace --all-targets --quiet -- -D warnings
step "cargo check -p aethermart-core --no-default-features (embedders without generator and benchmarks)"
cargo check -p aethermart-core --no-default-features --quiet
step "cargo test --workspace";                      cargo test --workspace
step "cargo doc --workspace --no-deps";             RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
step "all checks passed"
