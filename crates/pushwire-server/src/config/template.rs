//! The commented starter file written by `pushwire genconfig`.

/// A starter configuration: every common key with its default, commented.
pub const STARTER_CONFIG: &str = r#"# pushwire configuration (TOML). Keys follow Centrifugo v6 where both have the feature.
# Every key may also come from the environment: PUSHWIRE_ + the key path in capitals with `__`
# between segments, e.g. PUSHWIRE_HTTP_SERVER__PORT=9000 or PUSHWIRE_HTTP_API__KEY=secret.

[http_server]
address = "127.0.0.1"      # bind address; loopback by default
port = 8000
max_connections = 100000   # TCP connections at once; beyond it HTTP 503
connect_rate_per_ip = 100  # connection attempts per second per IP (429 beyond); 0 = off
connect_burst_per_ip = 500
trusted_proxies = []       # load balancers whose X-Forwarded-For names the client, e.g. ["10.0.0.0/8"]
header_read_timeout = "10s"
write_timeout = "10s"       # a peer that reads nothing this long while bytes wait loses its connection
body_read_timeout = "10s"   # request bodies must be complete in time (408 beyond)

# HTTPS, HTTP/1.1 and HTTP/2:
# [http_server.tls]
# enabled = true
# cert_pem_file = "/etc/pushwire/cert.pem"
# key_pem_file = "/etc/pushwire/key.pem"

[http_api]
key = "change-me"          # X-API-Key / "Authorization: apikey <key>" for /api
insecure = false           # true disables the key check: never in production

[grpc_api]
enabled = false            # Centrifugo's gRPC server API (proto/api.proto) on its own port
port = 10000
key = ""                   # "authorization: apikey <key>" metadata; required when enabled

[client]
# Browsers must come from one of these origins; empty rejects every request carrying Origin.
allowed_origins = []
allow_anonymous_connect_without_token = false
insecure = false           # testing only: no tokens, every permission granted
ping_interval = "25s"
pong_timeout = "8s"
queue_max_size = 1048576   # bytes queued per connection before it is closed with 3008 (slow)
channel_limit = 128
stale_close_delay = "10s"
history_max_publication_limit = 300
recovery_max_publication_limit = 300

[client.token]
hmac_secret_key = ""       # HS256/384/512 connection and subscription tokens
# rsa_public_key = ""      # PEM, inline: RS256/384/512
# ecdsa_public_key = ""    # PEM, inline (P-256/P-384): ES256/384
# jwks_public_endpoint = "" # fixed JWKS URL; keys chosen by kid
# algorithms = []          # optional pin, e.g. ["RS256"]
# audience = ""            # required `aud` when set
# issuer = ""              # required `iss` when set

# [client.subscription_token] # own keys for subscription tokens (default: client.token)
# enabled = true

[channel]
max_length = 255

[channel.without_namespace]
allow_subscribe_for_client = true

# [[channel.namespaces]]
# name = "chat"
# presence = true
# join_leave = true
# history_size = 100
# history_ttl = "300s"
# force_recovery = true
# allow_subscribe_for_client = true
# allow_publish_for_subscriber = true
# allow_history_for_subscriber = true
# allow_presence_for_subscriber = true

[websocket]
message_size_limit = 65536
write_timeout = "1s"
# compression = true               # permessage-deflate for clients that offer it (docs/transports.md)
# compression_level = 1
# compression_min_size = 0
# decompressed_message_size_limit = 0   # 0: ten times message_size_limit (bomb limit, close 1009)

[log]
level = "info"
format = "text"            # or "json"

[shutdown]
timeout = "10s"
drain_period = "0s"         # spread the 3001 disconnects over this period (rolling deploys)

# A cluster: nodes on one Redis prefix behave as one server behind any load balancer
# (docs/engines.md#cluster).
# [engine]
# type = "redis"             # or "embedded" (one node, durable) or "memory" (default)
# [engine.redis]
# address = "redis://127.0.0.1:6379"   # or a list: channels sharded over several Redis
# prefix = "pushwire"
# sentinel_address = ["127.0.0.1:26379"] # Redis Sentinel instead of address
# sentinel_master_name = "mymaster"
# NATS core between nodes instead of Redis PUB/SUB (history stays in engine.redis):
# [broker]
# enabled = true
# type = "nats"
# [broker.nats]
# url = "nats://127.0.0.1:4222"
# [node]
# name = ""                  # shown in `info`; default: the host name
# info_interval = "3s"       # announcements to the other nodes
# info_ttl = "10s"           # a silent node is gone after this
# survey_timeout = "3s"      # `channels` surveys and forwarded /emulation

# Lifecycle events to your backend (docs/lifecycle.md).
# [lifecycle]
# enabled = true
# snapshot_interval = "60s"
# [[lifecycle.sinks]]
# type = "webhook"           # webhook | redis_stream | kafka | nats_jetstream
# url = "https://app.example.com/pushwire/events"
# secret = ""                # at least 16 bytes; X-Pushwire-Signature: sha256=<hex HMAC>
"#;
