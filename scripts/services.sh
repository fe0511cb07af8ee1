#!/usr/bin/env bash
# Starts (and installs, when missing) the real services the test suites talk to, all on
# 127.0.0.1: Redis 6379, RabbitMQ 5672, NATS with JetStream 4222, PostgreSQL 5432 and a
# Kafka-compatible broker (tansu) on 9092. Quick when everything already runs. A service that
# cannot be started is an error: the suites never skip a missing broker.
# It also installs HAProxy, which the cluster tests start themselves, one instance per test.
#
# Env: PUSHWIRE_SKIP_KAFKA=1 leaves tansu out (for a quick local run of other suites only).
set -euo pipefail

cd "$(dirname "$0")/.."

listening() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # name port seconds
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        listening "$2" && return 0
        sleep 0.1
    done
    echo "services: $1 did not start on 127.0.0.1:$2 within $3 s" >&2
    return 1
}

apt_install() { # packages...
    echo "services: installing $* from Debian"
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
    fi
}

need() { # command package
    command -v "$1" >/dev/null 2>&1 || [[ -x "$1" ]] || apt_install "$2"
}

# HAProxy is not a daemon here: the cluster tests start their own instances in front of their
# nodes (crates/pushwire-test-support/src/haproxy.rs). Only make sure it is installed.
need /usr/sbin/haproxy haproxy

if ! listening 6379; then
    need redis-server redis-server
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    wait_port redis 6379 20
fi

bash scripts/start-redis-topologies.sh

if ! listening 5672; then
    need rabbitmq-server rabbitmq-server
    rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_port rabbitmq 5672 90
fi

if ! listening 4222; then
    need nats-server nats-server
    mkdir -p "$HOME/.cache/nats-js"
    nohup nats-server -a 127.0.0.1 -p 4222 -js -sd "$HOME/.cache/nats-js" >/tmp/nats-server.log 2>&1 &
    wait_port nats 4222 20
fi

if ! listening 5432; then
    need /usr/bin/pg_ctlcluster postgresql
    pg_ctlcluster --skip-systemctl-redirect 15 main start
    wait_port postgresql 5432 60
fi
# The suites use database `test` as user postgres (trust auth on loopback).
if ! psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null
fi
bash scripts/start-postgresql-logical.sh # wal_level = logical for postgresql_cdc
bash scripts/start-mosquitto.sh # MQTT broker on 1883 for the mqtt consumer
bash scripts/start-mariadb-binlog.sh # MariaDB 3306 with a ROW binlog for mysql_cdc

if [[ "${PUSHWIRE_SKIP_KAFKA:-0}" != 1 ]]; then
    bash scripts/start-tansu.sh
fi
echo "services: redis, rabbitmq, nats, postgresql$([[ "${PUSHWIRE_SKIP_KAFKA:-0}" != 1 ]] && echo ', tansu') ready"
