#!/bin/sh
# PostgreSQL from Debian in the foreground: a cluster under $PGDATA (created on first start), the
# role and database of POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, listening on
# $POSTGRES_LISTEN:$POSTGRES_PORT (default 127.0.0.1:5432 — on host networking only loopback).
set -eu
BIN=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
PGDATA=${PGDATA:-/var/lib/postgresql/panda}
PORT=${POSTGRES_PORT:-5432}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  "$BIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  "$BIN/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -k /tmp" -w start >/dev/null
  "$BIN/psql" -h /tmp -U postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE \"${POSTGRES_USER:-dagster}\" LOGIN PASSWORD '${POSTGRES_PASSWORD:-dagster}'" \
    -c "CREATE DATABASE \"${POSTGRES_DB:-dagster}\" OWNER \"${POSTGRES_USER:-dagster}\""
  "$BIN/pg_ctl" -D "$PGDATA" -w stop >/dev/null
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec "$BIN/postgres" -D "$PGDATA" -k /tmp -p "$PORT" -c listen_addresses="${POSTGRES_LISTEN:-127.0.0.1}"
