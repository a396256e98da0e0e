#!/usr/bin/env bash
# The main job, end to end on local servers it starts itself:
#   servers up -> health check -> schema apply -> live orders through sp_PlaceOrder -> reports.
# Safe to run again. Uses your own servers instead when AETHERMART_MARIADB_URL /
# AETHERMART_MONGODB_URI are set (see README, Configuration).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

say "Starting MariaDB and the MongoDB-wire server on 127.0.0.1 (installs what is missing)"
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"

say "Building the aethermart CLI (release)"
cargo build --release --quiet -p aethermart-cli -p aethermart-worker
aethermart=target/release/aethermart

say "Health of both stores: aethermart doctor"
$aethermart doctor

say "Schema: aethermart schema apply && aethermart schema status"
$aethermart schema apply
$aethermart schema status

say "sp_PlaceOrder under load: aethermart bench place-order (own database ${AETHERMART_MARIADB_URL##*/}_bench)"
$aethermart bench place-order --clients 1,4 --seconds 3

say "Done. Look around:"
cat <<EOF
  eval "\$(scripts/services.sh env)"          # point your shell at the local servers
  $aethermart --help                  # every subcommand, with examples
  $aethermart report sales | report low-stock | report customer 1
  scripts/services.sh status | down           # see or stop the local servers
EOF
