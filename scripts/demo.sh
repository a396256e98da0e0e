#!/usr/bin/env bash
# The main job, end to end on local throwaway servers it starts itself:
#   servers up -> health check -> `aethermart up` (fresh schema, realistic data in both
#   stores, roles, initial migration, verification) -> the masked view -> the sync worker ->
#   live changes timed until MongoDB shows them, an order through sp_PlaceOrder -> quality
#   checks and lineage -> reports -> short benchmarks -> high availability: the platform on a
#   3-node Galera cluster, a node killed under the running worker, the node rejoining.
# Safe to run again: every run starts from empty local servers (their state is wiped). It
# never touches servers named by your own AETHERMART_* variables (it ignores them).
#
#   SCALE=0.5 SEED=7 scripts/demo.sh     # a bigger or different data set (default 0.1, seed 42)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
unset AETHERMART_MARIADB_URL AETHERMART_MONGODB_URI MARIA_DB_PASS MONGO_ADMIN_PASS
SCALE=${SCALE:-0.1}
SEED=${SEED:-42}
METRICS_PORT=${METRICS_PORT:-19187}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
# GET a path from the worker's metrics endpoint (bash's /dev/tcp: no curl needed).
http_get() {
  exec 3<>"/dev/tcp/127.0.0.1/$METRICS_PORT" || return 1
  printf 'GET %s HTTP/1.0\r\n\r\n' "$1" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

say "Starting MariaDB and the MongoDB-wire server on 127.0.0.1, empty (installs what is missing)"
scripts/services.sh wipe >/dev/null
scripts/services.sh up >/dev/null
eval "$(scripts/services.sh env)"

say "Building the aethermart CLI (release)"
cargo build --release --quiet -p aethermart-cli -p aethermart-worker
PATH="$PWD/target/release:$PATH"

say "Health of both stores"
run aethermart doctor

say "The whole platform in one command: fresh schema, data (scale $SCALE, seed $SEED), roles, binlog capture, migration, verification"
for user in ALEX SARAH MARIA WORKER; do    # random passwords, from the environment only
  export "AETHERMART_${user}_PASSWORD=$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
done
run aethermart up --fresh --yes --scale "$SCALE" --seed "$SEED" --capture binlog
run aethermart capture show

say "Governance: the analyst sarah reads masked customers, and nothing with personal data"
db=${AETHERMART_MARIADB_URL##*/}
echo "\$ mariadb -u sarah $db -e 'SELECT * FROM v_customers_masked LIMIT 3; SELECT email FROM Customers LIMIT 1'"
MYSQL_PWD="$AETHERMART_SARAH_PASSWORD" mariadb -h 127.0.0.1 -P "${AETHERMART_LOCAL_MARIADB_PORT:-13306}" -u sarah "$db" \
  -e 'SELECT * FROM v_customers_masked LIMIT 3; SELECT email FROM Customers LIMIT 1' 2>&1 || true

# The worker logs in with its own service account, which holds exactly what it needs: a
# subshell exports its login and execs the worker, so `$!` is the worker's own pid (stopped by
# pid below) and the password never appears in a command line.
worker_login() {
  export AETHERMART_MARIADB_URL="${AETHERMART_MARIADB_URL/\/\/aethermart@/\/\/aethermart_worker@}"
  export MARIA_DB_PASS="$AETHERMART_WORKER_PASSWORD"
}

say "The sync worker (account aethermart_worker): follows MariaDB's binary log and applies every change to MongoDB (metrics on :$METRICS_PORT)"
WORKER_LOG=.state/worker.log
(worker_login; AETHERMART_METRICS_ADDR=127.0.0.1:$METRICS_PORT exec setsid aethermart-worker >"$WORKER_LOG" 2>&1 < /dev/null) &
WORKER_PID=$!
trap 'kill -TERM "$WORKER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  [ "$(http_get /healthz 2>/dev/null)" = ok ] && break
  sleep 0.1
done
echo "aethermart-worker running (pid $WORKER_PID, log $WORKER_LOG); status page: http://127.0.0.1:$METRICS_PORT/"

say "Live: a change in MariaDB, timed until MongoDB shows it"
run aethermart sync probe --customer 1
run aethermart sync probe --customer 2

say "Live: an order with a graphics card and a consultation, placed atomically by sp_PlaceOrder"
slot=$(date -u -d '+90 days' +%Y-%m-%dT10:00:00Z)
# A few products are discontinued (inactive) in generated data: take the first that sells.
for product in 2 3 4 5 6 7 8 9; do
  if out=$(aethermart order place --customer 1 --product "$product:1" --service "1@$slot" 2>/dev/null); then break; fi
done
echo "$ aethermart order place --customer 1 --product $product:1 --service 1@$slot"
echo "$out"
order=$(echo "$out" | awk '/^order/ {print $2}')
[ -n "$order" ] || { echo "demo: none of products 2-9 could be ordered" >&2; exit 1; }
run aethermart report customer 1

say "Live: refused orders name what is wrong (exit code 1)"
aethermart order place --customer 1 --product 2:100000 || true
aethermart order place --customer 999999 --product 2 || true

say "Live: cancelling restocks and frees the consultant's slot"
run aethermart order cancel "$order"

say "Live: the changes above reached MongoDB through the worker"
run aethermart sync status
for _ in $(seq 1 100); do
  status=$(aethermart sync status --json || true)
  pending=$(echo "$status" | awk -F': ' '/"pending"/ {gsub(/,/, "", $2); n += $2} END {print n + 0}')
  behind=$(echo "$status" | awk -F': ' '/"behind_transactions"/ {gsub(/,/, "", $2); print $2}')
  [ "$pending" = 0 ] && [ "$behind" = 0 ] && break
  sleep 0.1
done
run aethermart sync status
run aethermart migrate --verify-only
echo "\$ curl -s 127.0.0.1:$METRICS_PORT/metrics | grep -E 'changes_applied|binlog_(read_lag|transactions|gtid)'"
http_get /metrics | grep -E '^aethermart_sync_(changes_applied|binlog_(read_lag_seconds|transactions_total|gtid_sequence))' || true
echo "\$ curl -s 127.0.0.1:$METRICS_PORT/ | grep -o '<td class=\"applied\"[^<]*'   # the status page"
http_get / | grep -o '<td class="applied"[^<]*' || true
echo "\$ curl -s 127.0.0.1:$METRICS_PORT/readyz"
http_get /readyz || true

say "Operating: resync chosen documents (the worker rewrites them from the current rows)"
run aethermart sync resync --entity customers --where "customer_id BETWEEN 1 AND 5"
run aethermart sync dead-letters list
kill -TERM "$WORKER_PID"; wait "$WORKER_PID" || true
trap - EXIT
echo "worker stopped (SIGTERM): $(tail -n 1 "$WORKER_LOG" | sed 's/\x1b\[[0-9;]*m//g')"

say "Data quality and lineage"
run aethermart quality check
run aethermart lineage --limit 8

say "Search: the catalogue in a shopper's own words (words and meaning, fused; then words alone)"
run aethermart search "wifi does not reach the upstairs bedrooms" --k 3
run aethermart search "wifi does not reach the upstairs bedrooms" --k 3 --ranking lexical
run aethermart search "someone to help me choose parts for my first build" --kind service --k 3

say "Reports"
quarter_start=$(date -u +%Y)-$(printf %02d $(( ($(date -u +%-m) - 1) / 3 * 3 + 1 )))-01
run aethermart report sales --since "$quarter_start"
run aethermart report low-stock --limit 5

say "sp_PlaceOrder under load, and the sync worker's latency (in their own databases)"
run aethermart bench place-order --clients 1,4 --seconds 3
run aethermart bench sync --rates 500 --seconds 3 --customers 5000

say "High availability: the platform on a 3-node Galera cluster (127.0.0.1:13321-13323)"
scripts/cluster.sh up galera
(
  eval "$(scripts/cluster.sh env galera)"
  export AETHERMART_MONGODB_URI="${AETHERMART_MONGODB_URI/\/aethermart\?//aethermart_ha?}"
  run aethermart cluster status
  run aethermart up --fresh --yes --scale 0.01 --seed "$SEED"
  HA_LOG=.state/worker-ha.log
  (worker_login; AETHERMART_METRICS_ADDR=off exec setsid aethermart-worker >"$HA_LOG" 2>&1 < /dev/null) &
  ha_worker=$!
  trap 'kill -TERM "$ha_worker" 2>/dev/null || true' EXIT
  run aethermart sync probe --customer 1
  say "Killing g1, the node everybody writes to; the worker and the CLI move to g2"
  run scripts/cluster.sh kill g1
  run aethermart cluster status || true
  run aethermart sync probe --customer 1 --timeout 30
  echo "the worker's log:"
  grep -E 'writes move to another node|sync home moves' "$HA_LOG" | sed 's/\x1b\[[0-9;]*m//g' || true
  say "g1 rejoins (incremental state transfer) and catches up"
  run scripts/cluster.sh start g1
  run aethermart cluster status
  run aethermart migrate --verify-only
  kill -TERM "$ha_worker"; wait "$ha_worker" || true
  trap - EXIT
  say "Network rules for such a cluster: node ports open between the nodes only"
  run aethermart cluster firewall --node 10.0.0.1 --node 10.0.0.2 --node 10.0.0.3
)

say "Done. Look around:"
cat <<EOF
  eval "\$(scripts/services.sh env)"        # point your shell at the local servers
  export PATH="$PWD/target/release:\$PATH"
  aethermart --help                         # every subcommand, with examples
  aethermart report customer 17             # any customer's orders
  aethermart-worker                         # follow the queues; status page http://127.0.0.1:19187/ (also /metrics, /healthz, /readyz)
  aethermart sync dead-letters list         # failed changes; requeue | discard them
  aethermart sync resync --entity customers --keys 1,2   # rebuild chosen documents
  aethermart sync status                    # queue depth, retries, dead letters
  aethermart bench generate --scale 1       # loader speed at scale 1
  scripts/services.sh status | down         # see or stop the local servers
  eval "\$(scripts/cluster.sh env galera)"   # the Galera cluster instead (scripts/cluster.sh down stops it)
EOF
