#!/usr/bin/env bash
# Starts the extra Redis processes the engine's scaling tests talk to, all on 127.0.0.1 with
# no persistence (Debian's redis-server, installed by scripts/services.sh):
# - shards: two more plain Redis on 6391 and 6392 (with 6379 they are the three shards of
#   engine.redis.address = [6379, 6391, 6392] in the client-side sharding tests);
# - sentinel: master 6393, replica 6394, three sentinels 26391-26393 watching master
#   `pwmaster` (quorum 2); the Sentinel tests fail the master over and back themselves;
# - cluster: a Redis Cluster of three masters and three replicas on 7001-7006 (cluster bus
#   17001-17006), made with `redis-cli --cluster create --cluster-replicas 1`; the Cluster
#   tests kill a master to see its replica promoted, and this script restarts the killed
#   process (it rejoins as a replica) and waits until every slot is served again.
# Quick when everything already listens. A process that cannot be started is an error.
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port
    local i
    for ((i = 0; i < 100; i++)); do
        listening "$2" && return 0
        sleep 0.1
    done
    echo "start-redis-topologies: $1 did not listen on 127.0.0.1:$2 within 10 s" >&2
    return 1
}

plain() { # port [extra args...]
    local port=$1
    shift
    listening "$port" && return 0
    # Replication writes an RDB file even without persistence: keep it out of the work tree.
    mkdir -p "/tmp/pushwire-redis-$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --dir "/tmp/pushwire-redis-$port" --logfile "/tmp/redis-$port.log" "$@" >/dev/null
    wait_port "redis $port" "$port"
}

plain 6391
plain 6392

plain 6393
plain 6394 --replicaof 127.0.0.1 6393
dir="${TMPDIR:-/tmp}/pushwire-sentinel"
mkdir -p "$dir"
for port in 26391 26392 26393; do
    listening "$port" && continue
    # Sentinel rewrites its configuration file: each gets its own, made fresh.
    cat >"$dir/sentinel-$port.conf" <<CONF
bind 127.0.0.1
port $port
daemonize yes
logfile $dir/sentinel-$port.log
dir $dir
sentinel monitor pwmaster 127.0.0.1 6393 2
sentinel down-after-milliseconds pwmaster 1000
sentinel failover-timeout pwmaster 5000
sentinel parallel-syncs pwmaster 1
CONF
    redis-server "$dir/sentinel-$port.conf" --sentinel >/dev/null
    wait_port "sentinel $port" "$port"
done

# Redis Cluster: 7001-7006, cluster state in /tmp/pushwire-redis-cluster/<port>.
cluster_dir="${TMPDIR:-/tmp}/pushwire-redis-cluster"
mkdir -p "$cluster_dir"
for port in 7001 7002 7003 7004 7005 7006; do
    listening "$port" && continue
    mkdir -p "$cluster_dir/$port"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
        --cluster-enabled yes --cluster-config-file "$cluster_dir/$port/nodes.conf" \
        --cluster-node-timeout 1000 --dir "$cluster_dir/$port" \
        --logfile "$cluster_dir/$port/redis.log" >/dev/null
    wait_port "redis cluster $port" "$port"
done
cluster_ok() { redis-cli -p 7001 cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }
if ! redis-cli -p 7001 cluster info 2>/dev/null | grep -q '^cluster_known_nodes:6'; then
    # Fresh processes (or a half-made set): forget everything and create the cluster anew.
    for port in 7001 7002 7003 7004 7005 7006; do
        redis-cli -p "$port" flushall >/dev/null 2>&1 || true
        redis-cli -p "$port" cluster reset hard >/dev/null
    done
    redis-cli --cluster create 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003 \
        127.0.0.1:7004 127.0.0.1:7005 127.0.0.1:7006 --cluster-replicas 1 --cluster-yes \
        >"$cluster_dir/create.log"
fi
for ((i = 0; i < 100; i++)); do
    cluster_ok && break
    sleep 0.1
done
cluster_ok || { echo "start-redis-topologies: Redis Cluster 7001-7006 not ok within 10 s" >&2; exit 1; }
