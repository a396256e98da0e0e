#!/usr/bin/env bash
# Local throwaway servers for AetherMart on 127.0.0.1: MariaDB 10.11 and a MongoDB-wire server.
#
#   scripts/services.sh up       install what is missing, start both servers, wait until ready;
#                                fetch the search's embedding model once (scripts/model.sh)
#   scripts/services.sh down     stop the servers this script started (by pid file)
#   scripts/services.sh status   show what runs where
#   scripts/services.sh env      print the exports to use:  eval "$(scripts/services.sh env)"
#   scripts/services.sh wipe     stop, then delete all local server state (.state/)
#
# Both servers require a login: MariaDB the admin `aethermart` (password in
# .state/mariadb/aethermart.password), the MongoDB-wire server the user `aethermart` with the
# root role (SCRAM-SHA-256, password in .state/mongodb/aethermart.password), created on its first
# start through the server's localhost exception (scripts/mongo_first_user.py). A second
# MongoDB-wire server on the next port speaks only TLS (for the TLS tests); MariaDB offers TLS on
# its one port. Both use a local CA made on first start (.state/mariadb/tls/ca.pem).
#
# State lives in .state/ inside the repository (git-ignored). Nothing uses systemd.
# If AETHERMART_MARIADB_URL or AETHERMART_MONGODB_URI already point at your own servers, that
# server is left alone and not started locally.
#
# Settings (environment): AETHERMART_STATE_DIR (default <repo>/.state),
#   AETHERMART_LOCAL_MARIADB_PORT (13306), AETHERMART_LOCAL_MONGODB_PORT (37017; the TLS-only
#   server takes the port after it),
#   AETHERMART_SECANTUS_ROOT (where the MongoDB-wire server is installed, default ~/.local/secantus).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${AETHERMART_STATE_DIR:-$REPO/.state}
MARIADB_PORT=${AETHERMART_LOCAL_MARIADB_PORT:-13306}
MONGODB_PORT=${AETHERMART_LOCAL_MONGODB_PORT:-37017}
MONGODB_TLS_PORT=$((MONGODB_PORT + 1))
SECANTUS_VERSION=0.5.3-beta.196
SECANTUS_ROOT=${AETHERMART_SECANTUS_ROOT:-$HOME/.local/secantus}
SECANTUS_BIN=$SECANTUS_ROOT/bin/secantusd-rs
DB_USER=aethermart
DB_NAME=aethermart

MDB=$STATE/mariadb
MDB_TLS=$MDB/tls
MDB_CNF=$MDB/my.cnf
MDB_PASSWORD_FILE=$MDB/$DB_USER.password
MGO=$STATE/mongodb
MGO_PID=$MGO/server.pid
MGO_PASSWORD_FILE=$MGO/$DB_USER.password
MGO_TLS=$STATE/mongodb-tls
MGO_TLS_PID=$MGO_TLS/server.pid

LOCAL_MARIADB_URL="mysql://$DB_USER@127.0.0.1:$MARIADB_PORT/$DB_NAME"
LOCAL_MONGODB_URI="mongodb://$DB_USER@127.0.0.1:$MONGODB_PORT/$DB_NAME?directConnection=true&authSource=admin"
LOCAL_MONGODB_TLS_URI="mongodb://$DB_USER@127.0.0.1:$MONGODB_TLS_PORT/$DB_NAME?directConnection=true&authSource=admin&tls=true&tlsCAFile=$MDB_TLS/ca.pem"

LOG_PREFIX=services
# shellcheck source=scripts/lib.sh
. "$REPO/scripts/lib.sh"

# A store is "external" when its URL is set to something other than our local server.
external_mariadb() { [ -n "${AETHERMART_MARIADB_URL:-}" ] && [ "$AETHERMART_MARIADB_URL" != "$LOCAL_MARIADB_URL" ]; }
external_mongodb() { [ -n "${AETHERMART_MONGODB_URI:-}" ] && [ "$AETHERMART_MONGODB_URI" != "$LOCAL_MONGODB_URI" ]; }

secantus_ok() { [ -x "$SECANTUS_BIN" ] && "$SECANTUS_BIN" --version 2>/dev/null | grep -qF "$SECANTUS_VERSION"; }

install_mongodb() {
  secantus_ok && return 0
  command -v cmake >/dev/null || apt_install cmake
  log "building the MongoDB-wire server secantus-mdb@$SECANTUS_VERSION into $SECANTUS_ROOT (about 5 minutes, once per machine)"
  # GPL-2.0 server: installed as a separate program, never linked into our crates.
  # The crate declares rust-version 1.98 but builds with 1.95, hence --ignore-rust-version.
  cargo install --quiet --locked --ignore-rust-version --root "$SECANTUS_ROOT" "secantus-mdb@$SECANTUS_VERSION"
  secantus_ok || die "secantusd-rs was built but does not report version $SECANTUS_VERSION"
}

# Waits until a TCP port accepts connections while the process in pid file $2 is alive.
wait_tcp() { # port pidfile what logfile
  local end=$((SECONDS + 60))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    kill -0 "$(cat "$2")" 2>/dev/null || { tail -n 40 "$4" >&2 || true; die "$3 exited during start-up (log: $4)"; }
    [ $SECONDS -lt $end ] || die "$3 did not accept connections on 127.0.0.1:$1 within 60 s (log: $4)"
    sleep 0.1
  done
}

# A CA and a server certificate for 127.0.0.1 / localhost (TLS for clients that ask for it:
# `?ssl-mode=VERIFY_IDENTITY&ssl-ca=$MDB_TLS/ca.pem`), made once per state directory.
ensure_mariadb_tls() {
  [ -s "$MDB_TLS/server-key.pem" ] && [ -s "$MDB_TLS/ca.pem" ] && return 0
  command -v openssl >/dev/null || apt_install openssl
  mkdir -p "$MDB_TLS"
  (
    cd "$MDB_TLS"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=AetherMart local CA" \
      -keyout ca-key.pem -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
      -keyout server-key.pem -out server.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > san.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 3650 \
      -extfile san.ext -out server-cert.pem 2>/dev/null
    rm -f server.csr san.ext ca.srl
    chmod 644 ca.pem server-cert.pem
  ) || die "making the local MariaDB's TLS certificates failed"
}

write_mariadb_cnf() {
  local user_line="user=$(id -un)"
  cat > "$MDB_CNF" <<EOF
# Local development/test server for AetherMart. Generated by scripts/services.sh.
[mariadbd]
$user_line
datadir=$MDB/data
socket=$MDB/mysqld.sock
pid-file=$MDB/mysqld.pid
log-error=$MDB/error.log
port=$MARIADB_PORT
bind-address=127.0.0.1
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
# Binary log for binlog capture (issue 17): row events with full images and column names, GTIDs.
log_bin=$MDB/binlog
server_id=1
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
gtid_strict_mode=ON
binlog_expire_logs_seconds=604800
default_time_zone=+00:00
innodb_buffer_pool_size=256M
innodb_log_file_size=128M
innodb_flush_log_at_trx_commit=2
max_connections=300
log_bin_trust_function_creators=1
ssl_ca=$MDB_TLS/ca.pem
ssl_cert=$MDB_TLS/server-cert.pem
ssl_key=$MDB_TLS/server-key.pem

[client]
socket=$MDB/mysqld.sock
EOF
}

mariadb_root() { mariadb --defaults-file="$MDB_CNF" -uroot "$@"; }

# The platform's admin login on the local server (creates test databases and RBAC users), with
# the password in $MDB_PASSWORD_FILE. Run on every start, so a lost user or file heals itself;
# the file is written only once the server accepted the password.
ensure_mariadb_user() {
  local pw
  if [ -s "$MDB_PASSWORD_FILE" ]; then
    pw=$(cat "$MDB_PASSWORD_FILE")
  else
    pw=$(random_password)
  fi
  admin_user_sql "$DB_USER" "$pw" "$DB_NAME" | mariadb_root
  if [ ! -s "$MDB_PASSWORD_FILE" ]; then
    ( umask 077; printf '%s' "$pw" > "$MDB_PASSWORD_FILE.tmp" ) && mv "$MDB_PASSWORD_FILE.tmp" "$MDB_PASSWORD_FILE"
  fi
}

start_mariadb() {
  if external_mariadb; then log "MariaDB: using your AETHERMART_MARIADB_URL, not starting a local server"; return 0; fi
  install_mariadb
  mkdir -p "$MDB"
  if pid_alive "$MDB/mysqld.pid" "$MDB_CNF"; then ensure_mariadb_user; log "MariaDB already running (pid $(cat "$MDB/mysqld.pid")) on 127.0.0.1:$MARIADB_PORT"; return 0; fi
  ensure_mariadb_tls
  write_mariadb_cnf
  if [ ! -d "$MDB/data/mysql" ]; then
    log "MariaDB: initialising $MDB/data"
    mkdir -p "$MDB/data"
    mariadb-install-db --defaults-file="$MDB_CNF" --auth-root-authentication-method=socket \
      --skip-test-db > "$MDB/install-db.log" 2>&1 || { tail -n 40 "$MDB/install-db.log" >&2; die "mariadb-install-db failed"; }
  fi
  rm -f "$MDB/mysqld.pid"
  daemon "$MDB/stdout.log" mariadbd --defaults-file="$MDB_CNF" > "$MDB/mysqld.pid.launch"
  local end=$((SECONDS + 60))
  until mariadb-admin --defaults-file="$MDB_CNF" -uroot ping >/dev/null 2>&1; do
    kill -0 "$(cat "$MDB/mysqld.pid.launch")" 2>/dev/null || { tail -n 40 "$MDB/error.log" >&2; die "mariadbd exited during start-up (log: $MDB/error.log)"; }
    [ $SECONDS -lt $end ] || die "MariaDB did not answer within 60 s (log: $MDB/error.log)"
    sleep 0.1
  done
  rm -f "$MDB/mysqld.pid.launch"
  ensure_mariadb_user
  log "MariaDB $(mariadb_root -N -e 'SELECT VERSION()') up on 127.0.0.1:$MARIADB_PORT (pid $(cat "$MDB/mysqld.pid"))"
}

# The login of a MongoDB-wire server under --auth: on its first start (no password file yet)
# the user is created through the localhost exception and the password file written after the
# server accepted it. Users live in the server's data directory and survive restarts.
ensure_mongodb_user() { # port datadir [--tls-ca CA]
  local port=$1 dir=$2; shift 2
  [ -s "$dir/created-user" ] && return 0
  command -v python3 >/dev/null || apt_install python3-minimal
  [ -s "$MGO_PASSWORD_FILE" ] || ( umask 077; random_password > "$MGO_PASSWORD_FILE" )
  python3 "$REPO/scripts/mongo_first_user.py" "$port" "$DB_USER" "$@" < "$MGO_PASSWORD_FILE" >&2 \
    || die "could not create the MongoDB user $DB_USER on 127.0.0.1:$port (a user exists but its password file is gone? then: scripts/services.sh wipe)"
  echo "$DB_USER" > "$dir/created-user"
}

start_secantus() { # what port dir pidfile extra-args...
  local what=$1 port=$2 dir=$3 pidfile=$4; shift 4
  mkdir -p "$dir/data"
  if pid_alive "$pidfile" "$dir/data"; then log "$what already running (pid $(cat "$pidfile")) on 127.0.0.1:$port"; return 0; fi
  daemon "$dir/server.log" "$SECANTUS_BIN" --host 127.0.0.1 --port "$port" --storage-path "$dir/data" \
    --auth --log-file-max 16MB --log-level WARNING "$@" > "$pidfile"
  wait_tcp "$port" "$pidfile" "the $what" "$dir/server.log"
  log "$what (secantusd-rs $SECANTUS_VERSION) up on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

start_mongodb() {
  if external_mongodb; then log "MongoDB: using your AETHERMART_MONGODB_URI, not starting a local server"; return 0; fi
  install_mongodb
  mkdir -p "$MGO"
  start_secantus "MongoDB-wire server" "$MONGODB_PORT" "$MGO" "$MGO_PID" --cache-size 256M
  ensure_mongodb_user "$MONGODB_PORT" "$MGO"
  ensure_mariadb_tls
  start_secantus "TLS-only MongoDB-wire server" "$MONGODB_TLS_PORT" "$MGO_TLS" "$MGO_TLS_PID" --cache-size 64M \
    --tls-cert-file "$MDB_TLS/server-cert.pem" --tls-key-file "$MDB_TLS/server-key.pem"
  ensure_mongodb_user "$MONGODB_TLS_PORT" "$MGO_TLS" --tls-ca "$MDB_TLS/ca.pem"
}

print_env() {
  if external_mariadb; then
    echo "# MariaDB: keeping your AETHERMART_MARIADB_URL"
  else
    echo "export AETHERMART_MARIADB_URL='$LOCAL_MARIADB_URL'"
    echo "export MARIA_DB_PASS=\"\$(cat '$MDB_PASSWORD_FILE')\""
    echo "export AETHERMART_LOCAL_MARIADB_CA='$MDB_TLS/ca.pem'"
  fi
  if external_mongodb; then
    echo "# MongoDB: keeping your AETHERMART_MONGODB_URI"
  else
    echo "export AETHERMART_MONGODB_URI='$LOCAL_MONGODB_URI'"
    echo "export MONGO_ADMIN_PASS=\"\$(cat '$MGO_PASSWORD_FILE')\""
    echo "export AETHERMART_LOCAL_MONGODB_TLS_URI='$LOCAL_MONGODB_TLS_URI'"
  fi
  echo "export AETHERMART_EMBEDDING_MODEL_DIR='$("$REPO/scripts/model.sh" dir)'"
}

status() {
  local rc=0
  if external_mariadb; then echo "MariaDB  external (AETHERMART_MARIADB_URL)";
  elif pid_alive "$MDB/mysqld.pid" "$MDB_CNF"; then echo "MariaDB  running  pid $(cat "$MDB/mysqld.pid")  127.0.0.1:$MARIADB_PORT  state $MDB";
  else echo "MariaDB  stopped"; rc=3; fi
  if external_mongodb; then echo "MongoDB  external (AETHERMART_MONGODB_URI)";
  elif pid_alive "$MGO_PID" "$MGO/data" && pid_alive "$MGO_TLS_PID" "$MGO_TLS/data"; then
    echo "MongoDB  running  pid $(cat "$MGO_PID")  127.0.0.1:$MONGODB_PORT  state $MGO"
    echo "MongoDB  running  pid $(cat "$MGO_TLS_PID")  127.0.0.1:$MONGODB_TLS_PORT (TLS only)  state $MGO_TLS"
  else echo "MongoDB  stopped (or one of its two servers)"; rc=3; fi
  return $rc
}

case "${1:-}" in
  up) lock "$STATE/services.lock"; start_mariadb; start_mongodb
      "$REPO/scripts/model.sh" fetch || log "the search's embedding model was not fetched (search ranks by words until scripts/model.sh fetch succeeds)"
      log "ready; use:  eval \"\$(scripts/services.sh env)\""; print_env ;;
  down) lock "$STATE/services.lock"; stop_pid "$MGO_TLS_PID" "TLS-only MongoDB-wire server" "$MGO_TLS/data"
        stop_pid "$MGO_PID" "MongoDB-wire server" "$MGO/data"; stop_pid "$MDB/mysqld.pid" "MariaDB" "$MDB_CNF" ;;
  status) status ;;
  env) print_env ;;
  wipe) lock "$STATE/services.lock"; stop_pid "$MGO_TLS_PID" "TLS-only MongoDB-wire server" "$MGO_TLS/data"
        stop_pid "$MGO_PID" "MongoDB-wire server" "$MGO/data"; stop_pid "$MDB/mysqld.pid" "MariaDB" "$MDB_CNF"
        rm -rf "$MDB" "$MGO" "$MGO_TLS"; log "local server state deleted" ;;
  *) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
