#!/bin/sh
# Warehouse in and out (issue 21), back to back on one throwaway PostgreSQL cluster:
#   1. ROWS CRM rows read and mapped by `tessera run`, once from a `kind: postgres` table and once from the same
#      rows as a CSV file (same mapping, fresh SQLite stores);
#   2. `tessera sync` of a store of PROFILES profiles into the same cluster (rows written per second).
#
#   Benchmarks/warehouse.sh                       # 1,000,000 rows, 200,000 profiles
#   ROWS=100000 PROFILES=20000 Benchmarks/warehouse.sh
#
# Needs the PostgreSQL 15 server binaries (`apt-get install postgresql`); runs the cluster as `postgres` when root.
set -eu
cd "$(dirname "$0")/.."
ROWS=${ROWS:-1000000}
PROFILES=${PROFILES:-200000}
BIN=${TESSERA_PG_BIN:-/usr/lib/postgresql/15/bin}
if [ -z "${TESSERA:-}" ]; then swift build -c release --product tessera >&2; fi
T=${TESSERA:-$PWD/.build/release/tessera}
W=$(mktemp -d /tmp/tessera-warehouse-XXXXXX)
chmod 777 "$W"
PORT=$((20000 + $$ % 20000))
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
as_pg "$BIN/initdb" -D "$W/data" -A trust -U tessera >/dev/null
as_pg "$BIN/pg_ctl" -D "$W/data" -o "-h 127.0.0.1 -p $PORT -c fsync=off" -l "$W/pg.log" -w start >/dev/null
trap 'as_pg "$BIN/pg_ctl" -D "$W/data" -m immediate stop >/dev/null 2>&1; rm -rf "$W"' EXIT
PSQL="$BIN/psql -q -h 127.0.0.1 -p $PORT -U tessera"
$PSQL -d postgres -c "CREATE DATABASE crm" -c "CREATE DATABASE warehouse"
$PSQL -d crm -c "CREATE TABLE crm_contacts (customer_no TEXT PRIMARY KEY, email TEXT, first_name TEXT,
  city TEXT, lifetime_value TEXT, updated_at TIMESTAMPTZ NOT NULL)" -c "INSERT INTO crm_contacts
  SELECT 'C' || i, 'c' || i || '@example.com', 'Name' || (i % 5000), 'City' || (i % 300), (i % 1000)::text || '.5',
    timestamptz '2026-01-01' + i * interval '1 second' FROM generate_series(1, $ROWS) AS i" \
  -c "CREATE INDEX ON crm_contacts (updated_at)"
$PSQL -d crm -c "\\copy (SELECT * FROM crm_contacts ORDER BY updated_at) TO '$W/crm_contacts.csv' CSV HEADER"
common='    timestamp: updated_at
    schema: { required: [customer_no], types: { lifetime_value: double } }
    map:
      user_id: customer_no
      email: email
      traits.first_name: first_name
      traits.city: city
      traits.lifetime_value: lifetime_value'
head='pipeline: crm
identifiers:
  user_id: { normalize: trim, max_per_profile: 1, priority: 1 }
  email: { normalize: email, priority: 2 }
deterministic:
  ids: { link_on: [user_id, email] }'
printf '%s\nsources:\n  crm:\n    kind: postgres\n    url: postgres://tessera@127.0.0.1:%s/crm\n    table: crm_contacts\n    cursor: updated_at\n%s\nsync:\n  analytics:\n    database: postgres://tessera@127.0.0.1:%s/warehouse\n    schema: tessera\n' \
  "$head" "$PORT" "$common" "$PORT" >"$W/pg.yaml"
printf '%s\nsources:\n  crm:\n    kind: csv\n    path: crm_contacts.csv\n%s\n' "$head" "$common" >"$W/csv.yaml"
echo "rows $ROWS, profiles $PROFILES, cores=$(nproc), $(date -u +%Y-%m-%dT%H:%MZ)"
for kind in csv pg; do
  line=$($T run "$W/$kind.yaml" --store "$W/$kind.sqlite" --progress none | grep ' time ')
  echo "tessera run, $kind source: $line"
done
# The sync: a store of PROFILES profiles (the first rows of the table), synced into the warehouse database.
# (By the number in the key: a NOT IN over a 200,000-row subquery is not hashed at the default work_mem, and
# went on for minutes.)
$PSQL -d crm -c "DELETE FROM crm_contacts WHERE substr(customer_no, 2)::int > $PROFILES"
$T run "$W/pg.yaml" --store "$W/sync.sqlite" --progress none >/dev/null
$T sync "$W/pg.yaml" --store "$W/sync.sqlite" | head -1 | sed 's/^/first sync: /'
$T sync "$W/pg.yaml" --store "$W/sync.sqlite" | head -1 | sed 's/^/second sync (nothing changed): /'
