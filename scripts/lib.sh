# Shell helpers shared by scripts/services.sh and scripts/cluster.sh (sourced, not run).
# The caller sets LOG_PREFIX before sourcing.

log() { printf '[%s] %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { printf '[%s] error: %s\n' "$LOG_PREFIX" "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  log "installing Debian packages: $*"
  # 9>&-: a service the package starts must not inherit (and hold) our lock.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq 9>&-
  as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "$@" >/dev/null 9>&-
}

# MariaDB with what the replica and Galera topologies need (galera-4, rsync for state
# transfers), and nftables, whose checker (`nft -c`) the tests run on the rendered rules.
install_mariadb() {
  command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null \
    && [ -e /usr/lib/galera/libgalera_smm.so ] && command -v rsync >/dev/null \
    && command -v nft >/dev/null && return 0
  apt_install mariadb-server mariadb-client galera-4 rsync socat mariadb-backup nftables
}

# True when the pid file names a live process whose command line mentions $2 (our binary and
# state directory), so a stale pid file never makes us trust or signal an unrelated process.
pid_alive() { # pidfile pattern
  [ -f "$1" ] || return 1
  local pid; pid=$(cat "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# Starts a server in its own session with no inherited descriptors beyond stdin/out/err, so
# nobody waiting on a pipe of ours (CI, $(...), | tee) waits for the server too.
daemon() { # logfile command...
  local logfile=$1; shift
  (
    for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$@" > "$logfile" 2>&1 < /dev/null
  ) &
  echo $!
}

# True while process $1 runs (a zombie left to a PID 1 that does not reap counts as gone).
running() { kill -0 "$1" 2>/dev/null && ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$1/stat" 2>/dev/null; }

# True when every existing directory from $1 up to / lets other users pass (o+x), so servers
# running as another user (mysql) can reach files below $1.
world_traversable() {
  local d=$1 perms
  while [ "$d" != / ] && [ -n "$d" ]; do
    if [ -d "$d" ]; then perms=$(stat -c %A "$d"); case ${perms:9:1} in x|t) ;; *) return 1 ;; esac; fi
    d=$(dirname "$d")
  done
}

# Stops the process of a pid file (SIGTERM, SIGKILL after 30 s), only if it is ours.
stop_pid() { # pidfile what pattern
  pid_alive "$1" "$3" || { rm -f "$1"; return 0; }
  local pid; pid=$(cat "$1")
  kill -TERM "$pid"
  for _ in $(seq 1 300); do running "$pid" || break; sleep 0.1; done
  if running "$pid"; then log "$2 (pid $pid) ignored SIGTERM for 30 s; sending SIGKILL"; kill -KILL "$pid"; fi
  rm -f "$1"
  log "$2 stopped (pid $pid)"
}

# SQL for the platform's admin login USER (all privileges, from 127.0.0.1 and the socket) with
# PASSWORD (letters and digits), and the database DB. Repeatable: it also resets the password.
admin_user_sql() { # user password database
  cat <<SQL
CREATE USER IF NOT EXISTS '$1'@'127.0.0.1' IDENTIFIED BY '$2';
CREATE USER IF NOT EXISTS '$1'@'localhost' IDENTIFIED BY '$2';
ALTER USER '$1'@'127.0.0.1' IDENTIFIED BY '$2';
ALTER USER '$1'@'localhost' IDENTIFIED BY '$2';
GRANT ALL PRIVILEGES ON *.* TO '$1'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$1'@'localhost' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS \`$3\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
SQL
}

# A random password of 32 letters and digits (nothing to quote in SQL or shell).
random_password() { head -c 48 /dev/urandom | base64 | tr -d '/+=\n' | head -c 32; }

# Serialises up/down/wipe so two callers never start or stop the same servers at once.
lock() { # lockfile
  mkdir -p "$(dirname "$1")"
  exec 9> "$1"
  flock -w 600 9 || die "another caller holds $1"
}
