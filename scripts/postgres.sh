#!/usr/bin/env bash
# PostgreSQL for the mapper's scale-out store and its tests (Debian bookworm's postgresql-15).
#
#   scripts/postgres.sh install          install the server binaries (idempotent; starts nothing)
#   scripts/postgres.sh start DIR PORT   initdb DIR (once) and start a server on 127.0.0.1:PORT, socket in DIR;
#                                        prints the connection URL (database "netmapper", user "nm", trust auth)
#   scripts/postgres.sh stop DIR [MODE]  stop the server of DIR (MODE: fast, the default, or immediate for a
#                                        throwaway test server)
#
# The server refuses to run as root, so it runs as the `postgres` user the package creates, and DIR belongs to
# it. Trust authentication on loopback only: a test and bench server, never a production setup
# (deploy/overlays/postgres points the mapper at a managed database instead).
set -euo pipefail
PGBIN=${NETMAPPER_PGBIN:-/usr/lib/postgresql/15/bin}

die() { echo "postgres.sh: $*" >&2; exit 1; }

install() {
  [ "$(id -u)" = 0 ] || die "install must run as root"
  if [ -x "$PGBIN/postgres" ] && id postgres >/dev/null 2>&1; then
    return 0
  fi
  source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"
  apt_install --no-install-recommends postgresql-15
  [ -x "$PGBIN/postgres" ] || die "postgresql-15 installed but $PGBIN/postgres is missing"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir=$1 port=$2
  [ -x "$PGBIN/pg_ctl" ] || die "no PostgreSQL at $PGBIN (run: scripts/postgres.sh install)"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  chmod 700 "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    # C collation: text sorts by code point, as the mapper's Python side does.
    as_postgres "$PGBIN/initdb" -D "$dir" -A trust -U nm --locale=C -E UTF8 >"$dir.initdb.log" 2>&1 \
      || { cat "$dir.initdb.log" >&2; die "initdb $dir failed"; }
  fi
  if ! as_postgres "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    as_postgres "$PGBIN/pg_ctl" -D "$dir" -w -t 30 -l "$dir/server.log" \
      -o "-k $dir -c listen_addresses=127.0.0.1 -p $port -c max_connections=300" start >/dev/null \
      || { tail -20 "$dir/server.log" >&2 || true; die "server in $dir did not start"; }
  fi
  as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U nm -d postgres -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname = 'netmapper'" | grep -q 1 \
    || as_postgres "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U nm netmapper
  echo "postgresql://nm@127.0.0.1:$port/netmapper"
}

stop() {
  local dir=$1 mode=${2:-fast}
  [ -f "$dir/postmaster.pid" ] || return 0
  as_postgres "$PGBIN/pg_ctl" -D "$dir" -m "$mode" -w -t 30 stop >/dev/null
}

case "${1:-install}" in
  install) install ;;
  start) [ $# = 3 ] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
  stop) [ $# -ge 2 ] || die "usage: $0 stop DIR [fast|immediate]"; stop "$2" "${3:-fast}" ;;
  *) die "unknown command ${1}; use install, start DIR PORT or stop DIR" ;;
esac
