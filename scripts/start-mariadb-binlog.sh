#!/usr/bin/env bash
# Starts MariaDB (Debian `mariadb-server`) on 127.0.0.1:3306 with the row-based binary log the
# `mysql_cdc` consumer reads: log_bin, binlog_format = ROW, binlog_row_image = FULL,
# binlog_row_metadata = FULL (column names in the log), server_id = 1. Idempotent: restarts the
# server only when the binary log settings are missing.
set -euo pipefail

q() {
    mariadb -h 127.0.0.1 -u root -N -B -e "$1"
}

listening() {
    (exec 3<>/dev/tcp/127.0.0.1/3306) 2>/dev/null
}

if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
    echo "services: installing mariadb-server from Debian"
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server >/dev/null
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q mariadb-server >/dev/null
    fi
fi

conf=/etc/mysql/my.cnf
if ! grep -q '^binlog_format *= *ROW' "$conf" 2>/dev/null; then
    cat >>"$conf" <<'CNF'

[mariadbd]
# pushwire mysql_cdc (scripts/start-mariadb-binlog.sh)
log_bin = mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
server_id = 1
CNF
fi

start() {
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    nohup /usr/sbin/mariadbd >/tmp/pushwire-mariadb.log 2>&1 &
    for ((i = 0; i < 600; i++)); do
        q 'select 1' >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "services: mariadb did not start on 127.0.0.1:3306 within 60 s" >&2
    return 1
}

if ! listening; then
    start
elif [[ "$(q 'select @@log_bin, @@binlog_format')" != "$(printf '1\tROW')" ]]; then
    echo "services: restarting MariaDB with the row-based binary log"
    mariadb-admin -h 127.0.0.1 -u root shutdown
    for ((i = 0; i < 300; i++)); do
        listening || break
        sleep 0.1
    done
    start
fi
if [[ "$(q 'select @@log_bin, @@binlog_format')" != "$(printf '1\tROW')" ]]; then
    echo "services: MariaDB runs without a row-based binary log" >&2
    exit 1
fi
q 'create database if not exists test' >/dev/null
