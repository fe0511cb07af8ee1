#!/usr/bin/env bash
# Starts Mosquitto (Debian `mosquitto`) on 127.0.0.1:1883 for the `mqtt` consumer suites:
# anonymous, room for the QoS 1 messages a persistent session collects while a node is down.
# Tests that need TLS or passwords start their own instance (crates/pushwire-server/tests/
# consumers_mqtt.rs). Quick when something already listens on 1883.
set -euo pipefail

if (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
    exit 0
fi
if ! command -v mosquitto >/dev/null 2>&1 && [[ ! -x /usr/sbin/mosquitto ]]; then
    echo "services: installing mosquitto from Debian"
    if [[ $(id -u) -eq 0 ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto mosquitto-clients >/dev/null
    else
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto mosquitto-clients >/dev/null
    fi
fi
conf="$HOME/.cache/pushwire-mosquitto.conf"
mkdir -p "$(dirname "$conf")"
cat >"$conf" <<CONF
listener 1883 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000
log_dest file /tmp/pushwire-mosquitto.log
CONF
mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
"$mosq" -d -c "$conf"
for ((i = 0; i < 200; i++)); do
    (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null && exit 0
    sleep 0.1
done
echo "services: mosquitto did not start on 127.0.0.1:1883 within 20 s" >&2
exit 1
