#!/usr/bin/env bash
# A private RabbitMQ broker for the tests: Debian's `rabbitmq-server` (installed when missing,
# with sudo when not root), one node on free loopback ports, everything in one directory:
# its database (mnesia), logs, config, Erlang cookie and its own epmd.
#
#   tests/services/rabbitmq.sh start DIR     init DIR (if new) and start; on stdout:
#                                            export SWITCHYARD_TEST_AMQP_URL=amqp://…
#                                            (a restart of DIR reuses its ports and data)
#   tests/services/rabbitmq.sh stop DIR      stop the broker (DIR is kept: `start DIR` again)
#   tests/services/rabbitmq.sh destroy DIR   stop it, stop its epmd and remove DIR
#
# Everything but the export line goes to stderr, so `eval "$(… start DIR)"` works.
set -euo pipefail

log() { printf 'rabbitmq.sh: %s\n' "$*" >&2; }

usage() {
  log "usage: $0 start|stop|destroy DIR"
  exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

SBIN=/usr/lib/rabbitmq/bin

install_rabbitmq() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      log "RabbitMQ is not installed and we are neither root nor have sudo: apt-get install rabbitmq-server"
      exit 1
    fi
    sudo="sudo -n"
  fi
  log "installing Debian's rabbitmq-server package"
  # The package's own service is not wanted (and may not start in a container): the tests run
  # private brokers. policy-rc.d exit 101 keeps invoke-rc.d from starting it where honoured.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >&2
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

# The environment of the private node (also what rabbitmqctl needs to reach it).
node_env() {
  # shellcheck disable=SC1091
  . "$dir/ports"
  export HOME="$dir/home"
  export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
  export RABBITMQ_MNESIA_BASE="$dir/mnesia"
  export RABBITMQ_LOG_BASE="$dir/log"
  export RABBITMQ_NODENAME="sy$AMQP_PORT@localhost"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$AMQP_PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
  export RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
  export ERL_EPMD_PORT="$EPMD_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
}

init_dir() {
  mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
  if [ ! -f "$dir/ports" ]; then
    local amqp dist epmd
    amqp=$(pick_port)
    dist=$(pick_port)
    epmd=$(pick_port)
    if [ "$amqp" = "$dist" ] || [ "$amqp" = "$epmd" ] || [ "$dist" = "$epmd" ]; then
      log "port collision; try again"
      exit 1
    fi
    printf 'AMQP_PORT=%s\nDIST_PORT=%s\nEPMD_PORT=%s\n' "$amqp" "$dist" "$epmd" >"$dir/ports"
  fi
  : >"$dir/rabbitmq-env.conf"
  # No plugins: the tests speak AMQP only.
  printf '[].\n' >"$dir/enabled_plugins"
  # `guest` may log in from loopback (we bind to loopback only anyway); logs to files in DIR;
  # a low disk limit so a nearly full test machine still accepts messages.
  cat >"$dir/rabbitmq.conf" <<EOF
loopback_users = none
log.console = false
log.file.level = info
disk_free_limit.absolute = 50MB
EOF
  if [ ! -f "$dir/home/.erlang.cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
    chmod 0400 "$dir/home/.erlang.cookie"
  fi
}

start() {
  if [ ! -x "$SBIN/rabbitmq-server" ]; then
    install_rabbitmq
    [ -x "$SBIN/rabbitmq-server" ] || { log "no $SBIN/rabbitmq-server after installing"; exit 1; }
  fi
  init_dir
  node_env
  if ! port_free "$AMQP_PORT"; then
    log "port $AMQP_PORT is taken (is the broker of $dir already running?)"
    exit 1
  fi
  # Its own session, so that the test process's signals do not reach it.
  setsid "$SBIN/rabbitmq-server" >>"$dir/server.out" 2>&1 </dev/null &
  local deadline=$((SECONDS + 90))
  until "$SBIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" await_startup --timeout 5 >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      tail -n 30 "$dir/server.out" >&2 || true
      log "RabbitMQ did not start within 90 s (logs in $dir/log)"
      exit 1
    fi
    sleep 0.5
  done
  # await_startup can answer before the AMQP listener accepts connections.
  until ! port_free "$AMQP_PORT"; do
    if [ $SECONDS -ge $deadline ]; then
      log "RabbitMQ started but does not listen on $AMQP_PORT (logs in $dir/log)"
      exit 1
    fi
    sleep 0.2
  done
  log "RabbitMQ $("$SBIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" version 2>/dev/null || echo '?') is up on 127.0.0.1:$AMQP_PORT (node $RABBITMQ_NODENAME, data in $dir)"
  printf 'export SWITCHYARD_TEST_AMQP_URL=%s\n' "amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
}

stop() {
  [ -f "$dir/ports" ] || return 0
  node_env
  if "$SBIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1; then
    return 0
  fi
  # Not answering: kill what the pid file names.
  if [ -f "$RABBITMQ_PID_FILE" ]; then
    kill -9 "$(cat "$RABBITMQ_PID_FILE")" 2>/dev/null || true
  fi
}

destroy() {
  stop
  if [ -f "$dir/ports" ]; then
    node_env
    # The epmd this node started on its private port outlives the node.
    command -v epmd >/dev/null 2>&1 && epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  destroy) destroy ;;
  *) usage ;;
esac
