#!/usr/bin/env bash
# A private PostgreSQL server for the tests: Debian's `postgresql` binaries (installed when
# missing), `initdb` + `pg_ctl` on a free loopback port, everything in one directory, run as
# the `postgres` user when we are root (PostgreSQL refuses to run as root).
#
#   tests/services/postgres.sh start DIR     init DIR (if new) and start; on stdout:
#                                            export SWITCHYARD_TEST_DATABASE_URL=postgres://…
#                                            (a restart of DIR reuses its port)
#   tests/services/postgres.sh stop DIR      stop the server (DIR is kept: `start DIR` again)
#   tests/services/postgres.sh destroy DIR   stop it and remove DIR
#
# Everything but the export line goes to stderr, so `eval "$(… start DIR)"` works.
set -euo pipefail

log() { printf 'postgres.sh: %s\n' "$*" >&2; }

usage() {
  log "usage: $0 start|stop|destroy DIR"
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

bindir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && best=$d
  done
  printf '%s' "$best"
}

install_postgres() {
  if [ "$(id -u)" != 0 ]; then
    log "PostgreSQL is not installed and we are not root: apt-get install postgresql"
    exit 1
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

# Runs a command as the user that owns the cluster.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A free port below the kernel's ephemeral range, so that no outgoing connection (the tests
# open many) takes it while the server is stopped for a restart.
pick_port() {
  local p low=32768 _high
  if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r low _high </proc/sys/net/ipv4/ip_local_port_range
  fi
  [ "$low" -gt 11000 ] || low=11000
  for _ in $(seq 1 100); do
    p=$((10000 + RANDOM % (low - 10000)))
    if port_free "$p"; then
      printf '%s' "$p"
      return 0
    fi
  done
  log "no free port found"
  exit 1
}

start() {
  local bin
  bin=$(bindir)
  if [ -z "$bin" ]; then
    install_postgres
    bin=$(bindir)
    [ -n "$bin" ] || { log "no initdb/pg_ctl under /usr/lib/postgresql after installing"; exit 1; }
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || { log "no postgres user (is the postgresql package installed?)"; exit 1; }
    chown postgres "$dir"
    runuser -u postgres -- test -w "$dir" || {
      log "the postgres user cannot reach $dir (is a parent directory private? set TMPDIR=/tmp)"
      exit 1
    }
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      --no-sync >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  local port tries=0
  while :; do
    if [ -f "$dir/port" ]; then
      port=$(cat "$dir/port")
    else
      port=$(pick_port)
    fi
    # Tests only: no fsync (the tests kill Switchyard, not the machine), loopback only,
    # the socket in DIR, room for many test stores at once.
    if as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir \
          -c fsync=off -c full_page_writes=off -c max_connections=400" start >&2; then
      printf '%s' "$port" >"$dir/port"
      break
    fi
    tries=$((tries + 1))
    if [ -f "$dir/port" ] || [ $tries -ge 5 ]; then
      tail -n 20 "$dir/server.log" >&2 || true
      log "PostgreSQL did not start"
      exit 1
    fi
  done
  log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') is up on 127.0.0.1:$port (data in $dir)"
  printf 'export SWITCHYARD_TEST_DATABASE_URL=%s\n' "postgres://postgres@127.0.0.1:$port/postgres"
}

stop() {
  local bin
  bin=$(bindir)
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  destroy)
    stop
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
