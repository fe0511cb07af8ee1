#!/usr/bin/env bash
# Makes the local PostgreSQL 15 cluster (15 main, 127.0.0.1:5432) able to do logical
# replication for the `postgresql_cdc` consumer: wal_level = logical (with replication slots
# and WAL senders to spare). Idempotent: restarts the cluster only when wal_level changes.
set -euo pipefail

psql_q() {
    psql -h 127.0.0.1 -U postgres -d postgres -Atqc "$1"
}

if [[ "$(psql_q 'show wal_level')" == logical ]]; then
    exit 0
fi
echo "services: setting PostgreSQL wal_level = logical (restarts the cluster)"
psql_q "alter system set wal_level = logical" >/dev/null
[[ "$(psql_q 'show max_replication_slots')" -ge 10 ]] || psql_q "alter system set max_replication_slots = 20" >/dev/null
[[ "$(psql_q 'show max_wal_senders')" -ge 10 ]] || psql_q "alter system set max_wal_senders = 20" >/dev/null
pg_ctlcluster --skip-systemctl-redirect 15 main restart
for ((i = 0; i < 600; i++)); do
    if psql -h 127.0.0.1 -U postgres -d postgres -c 'select 1' >/dev/null 2>&1; then
        break
    fi
    sleep 0.1
done
if [[ "$(psql_q 'show wal_level')" != logical ]]; then
    echo "services: PostgreSQL wal_level is still not logical" >&2
    exit 1
fi
