//! Command-line options of `pushwire bench` and their validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::BenchError;
use crate::target::Target;

/// Most connections one run may open.
pub const MAX_CONNECTIONS: u32 = 100_000;
/// Longest publishing (or holding) phase, seconds.
pub const MAX_DURATION_SECS: u64 = 3_600;
/// Highest publication rate per channel, per second.
pub const MAX_RATE: u32 = 10_000;
/// Largest publication payload, bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// Longest warm-up, seconds.
pub const MAX_WARMUP_SECS: u64 = 60;
/// Default connect rate of every scenario but `connect` (which defaults to unpaced).
pub const DEFAULT_CONNECT_RATE: u32 = 2_000;

/// What a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// N subscribers on one channel, `--rate` publications per second to it.
    Fanout,
    /// N subscribers, each on its own channel; every channel gets `--rate` publications per
    /// second (sent with the `broadcast` API).
    Channels,
    /// Connection storm (N connects, unpaced by default), then a reconnect storm: the server
    /// disconnects the bench user through the API and every connection comes back.
    Connect,
    /// N idle subscribers, on one channel or (`--personal`) each on its own, held for
    /// `--duration`; server memory per connection.
    Idle,
    /// No server: the kernel's floor for a fan-out round. N loopback TCP connections to an
    /// in-process sink; every round writes one frame of the fan-out's size to each of them in
    /// turn (`--rate` rounds/s for `--duration`), with plain `write` calls and, interleaved,
    /// as one batched io_uring submission.
    Floor,
    /// Cluster scale run, one part of it per process (`--role`): `receive` holds N
    /// connections, each subscribed to its personal channel `CHANNEL-<global index>` and to the
    /// shared channel `CHANNEL`, until SIGINT/SIGTERM or `--duration`; `publish` runs one phase
    /// (`--phase broadcast`: `--broadcasts` publications to the shared channel; `personal`:
    /// `--rate` publications/s over random personal channels); `merge` combines their JSON
    /// reports (`--inputs`).
    Scale,
}

/// What one process of the `scale` scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleRole {
    /// Hold `--connections` subscribers, from `--first-index` on, and time every delivery.
    Receive,
    /// Publish one phase (`--phase`) through the API.
    Publish,
    /// Merge the JSON reports given with `--inputs` into one.
    Merge,
}

/// The publishing phase of one `scale --role publish` process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScalePhase {
    /// `--broadcasts` publications to the shared channel, one every `--broadcast-interval-ms`.
    Broadcast,
    /// `--rate` publications per second for `--duration` s, each to a random personal channel
    /// of `CHANNEL-<first-index>` .. `CHANNEL-<first-index + connections - 1>`.
    Personal,
}

impl Scenario {
    /// The name on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Fanout => "fanout",
            Scenario::Channels => "channels",
            Scenario::Connect => "connect",
            Scenario::Idle => "idle",
            Scenario::Floor => "floor",
            Scenario::Scale => "scale",
        }
    }
}

/// Options of `pushwire bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Scenario to run.
    #[arg(value_enum, default_value_t = Scenario::Fanout)]
    pub scenario: Scenario,
    /// Server base URL (http://HOST:PORT); the WebSocket URL is derived from it.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,
    /// Server API base URL (http://HOST:PORT) for publishing and disconnects, when not
    /// `--url`: e.g. one node of a cluster while connections go through its load balancer.
    #[arg(long)]
    pub api_url: Option<String>,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// HTTP API key, sent as `X-API-Key` with every API call.
    #[arg(long, default_value = "")]
    pub api_key: String,
    /// Connection JWT sent in `connect`; anonymous connect when neither this nor
    /// `--token-hmac-secret` is given.
    #[arg(long, conflicts_with = "token_hmac_secret")]
    pub token: Option<String>,
    /// Sign an HS256 connection token for `--user` with this secret.
    #[arg(long)]
    pub token_hmac_secret: Option<String>,
    /// User of the signed token (and of the reconnect storm's `disconnect` call).
    #[arg(long, default_value = "bench")]
    pub user: String,
    /// Number of WebSocket connections (hard cap 100000).
    #[arg(long, default_value_t = 1000)]
    pub connections: u32,
    /// Channel (`fanout`, `idle`) or channel prefix (`channels`: PREFIX-0, PREFIX-1, …).
    #[arg(long, default_value = "bench")]
    pub channel: String,
    /// Publications per second, per channel (hard cap 10000).
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Seconds of publishing, or of holding the connections in `idle` (hard cap 3600).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Approximate size in bytes of each publication's `data` object (hard cap 1 MiB).
    #[arg(long, default_value_t = 64)]
    pub payload_bytes: usize,
    /// Publish a realistic JSON document of about `--payload-bytes` (rows of a dashboard, a
    /// few fields changing per publication) instead of a padded object.
    #[arg(long)]
    pub document: bool,
    /// Subscribe with delta compression (`fossil`) and publish with `delta: true`; the bench
    /// applies each delta to rebuild the publication.
    #[arg(long, value_parser = ["fossil"])]
    pub delta: Option<String>,
    /// Offer permessage-deflate (RFC 7692) in every WebSocket handshake; compressed messages
    /// from the server are inflated (the server must have `websocket.compression` on to
    /// accept). Byte counts are of the inflated messages.
    #[arg(long)]
    pub deflate: bool,
    /// Connections opened per second, 0 for unpaced [default: 2000; `connect`: 0].
    #[arg(long)]
    pub connect_rate: Option<u32>,
    /// Seconds to wait after all connections are in, before measuring or publishing.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// `connect`: skip the reconnect storm.
    #[arg(long)]
    pub no_reconnect: bool,
    /// `idle`: each connection subscribes to its own channel (`CHANNEL-0`, `CHANNEL-1`, …), as
    /// users' personal channels, instead of all sharing `--channel`.
    #[arg(long)]
    pub personal: bool,
    /// `floor`: pin the writing thread to this CPU (as the server is pinned).
    #[arg(long)]
    pub writer_cpu: Option<usize>,
    /// `floor`: pin the sink thread to this CPU (as the bench is pinned).
    #[arg(long)]
    pub sink_cpu: Option<usize>,
    /// `floor`: only the plain `write` rounds, no io_uring rounds.
    #[arg(long)]
    pub no_batched: bool,
    /// `scale`: what this process does.
    #[arg(long, value_enum, default_value_t = ScaleRole::Receive)]
    pub role: ScaleRole,
    /// `scale`: global index of this process's first connection (its personal channel is
    /// `CHANNEL-<first-index>`); for `--phase personal`, the first personal channel published to.
    #[arg(long, default_value_t = 0)]
    pub first_index: u64,
    /// `scale --role publish`: the phase to run.
    #[arg(long, value_enum, default_value_t = ScalePhase::Broadcast)]
    pub phase: ScalePhase,
    /// `scale --phase broadcast`: publications to the shared channel (hard cap 10000).
    #[arg(long, default_value_t = 10)]
    pub broadcasts: u32,
    /// `scale --phase broadcast`: milliseconds between two broadcasts (1..=60000).
    #[arg(long, default_value_t = 1000)]
    pub broadcast_interval_ms: u64,
    /// `scale --role receive`: a file written (JSON: established, errors, secs) once every
    /// connection is in and the warm-up is over, for a script to start publishing.
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
    /// `scale --role merge`: the JSON reports of the receivers and publishers.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub inputs: Vec<PathBuf>,
    /// Server process id: its VmRSS is read before connecting and after all are subscribed,
    /// and its CPU time over the publish phase (`fanout`, `channels`).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Print the report as one JSON object (schema in docs/benchmarks.md) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report with latency and throughput charts.
    #[arg(long, value_name = "PATH")]
    pub html: Option<PathBuf>,
}

impl BenchArgs {
    /// Checks the options against the hard caps and the target against the loopback rule.
    pub(crate) fn validate(&self) -> Result<Target, BenchError> {
        let bad = |m: String| Err(BenchError::InvalidArgs(m));
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad(format!("--connections must be 1..={MAX_CONNECTIONS}"));
        }
        if self.duration == 0 || self.duration > MAX_DURATION_SECS {
            return bad(format!(
                "--duration must be 1..={MAX_DURATION_SECS} seconds"
            ));
        }
        if (self.publishes() || self.scenario == Scenario::Floor)
            && (self.rate == 0 || self.rate > MAX_RATE)
        {
            return bad(format!("--rate must be 1..={MAX_RATE}"));
        }
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return bad(format!(
                "--payload-bytes must be at most {MAX_PAYLOAD_BYTES}"
            ));
        }
        if self.warmup > MAX_WARMUP_SECS {
            return bad(format!(
                "--warmup must be at most {MAX_WARMUP_SECS} seconds"
            ));
        }
        if self.channel.is_empty() {
            return bad("--channel must not be empty".into());
        }
        if self.scenario == Scenario::Scale {
            self.validate_scale()?;
        }
        let target = Target::parse(&self.url)?;
        if !self.allow_remote && !target.is_loopback() {
            return Err(BenchError::RemoteTarget(target.host.clone()));
        }
        let mut target = target;
        if let Some(url) = &self.api_url {
            let api = Target::parse(url)?;
            if !self.allow_remote && !api.is_loopback() {
                return Err(BenchError::RemoteTarget(api.host.clone()));
            }
            target.api = Some(Box::new(api));
        }
        Ok(target)
    }

    /// The `scale` options: a merge needs inputs; the broadcast phase is bounded; the index
    /// range fits.
    fn validate_scale(&self) -> Result<(), BenchError> {
        let bad = |m: String| Err(BenchError::InvalidArgs(m));
        if self.role == ScaleRole::Merge && self.inputs.is_empty() {
            return bad("scale --role merge needs --inputs".into());
        }
        if self.broadcasts == 0 || self.broadcasts > MAX_RATE {
            return bad(format!("--broadcasts must be 1..={MAX_RATE}"));
        }
        if !(1..=60_000).contains(&self.broadcast_interval_ms) {
            return bad("--broadcast-interval-ms must be 1..=60000".into());
        }
        if self.first_index > u64::from(u32::MAX) {
            return bad(format!("--first-index must be at most {}", u32::MAX));
        }
        Ok(())
    }

    /// Whether the scenario publishes.
    pub(crate) fn publishes(&self) -> bool {
        matches!(self.scenario, Scenario::Fanout | Scenario::Channels)
    }

    /// Publications per channel: `rate × duration`.
    pub(crate) fn publications(&self) -> u64 {
        u64::from(self.rate) * self.duration
    }

    /// Connect rate in effect (0: unpaced): `--connect-rate`, or the scenario default.
    pub fn effective_connect_rate(&self) -> u32 {
        self.connect_rate.unwrap_or(match self.scenario {
            Scenario::Connect => 0,
            _ => DEFAULT_CONNECT_RATE,
        })
    }

    /// Channel of connection `index`.
    pub(crate) fn channel_of(&self, index: usize) -> String {
        match self.scenario {
            Scenario::Channels => format!("{}-{index}", self.channel),
            Scenario::Idle if self.personal => format!("{}-{index}", self.channel),
            Scenario::Scale => format!("{}-{}", self.channel, self.first_index + index as u64),
            _ => self.channel.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn parse(args: &[&str]) -> BenchArgs {
        Cli::parse_from(std::iter::once("bench").chain(args.iter().copied())).bench
    }

    #[test]
    fn defaults() {
        let a = parse(&[]);
        assert_eq!(a.scenario, Scenario::Fanout);
        assert_eq!(a.url, "http://127.0.0.1:8000");
        assert_eq!(a.connections, 1000);
        assert_eq!(a.rate, 20);
        assert_eq!(a.duration, 10);
        assert_eq!(a.effective_connect_rate(), DEFAULT_CONNECT_RATE);
        assert_eq!(a.publications(), 200);
        assert!(!a.json && a.html.is_none() && !a.allow_remote);
        a.validate().unwrap();
    }

    #[test]
    fn scenarios() {
        let a = parse(&["channels", "--channel", "c"]);
        assert_eq!(a.scenario, Scenario::Channels);
        assert_eq!(a.channel_of(7), "c-7");
        assert!(a.publishes());
        let a = parse(&["connect"]);
        assert_eq!(a.effective_connect_rate(), 0);
        assert!(!a.publishes());
        let a = parse(&["connect", "--connect-rate", "50"]);
        assert_eq!(a.effective_connect_rate(), 50);
        let a = parse(&["idle", "--rate", "0", "--html", "r.html"]);
        assert_eq!(a.channel_of(7), "bench");
        assert_eq!(parse(&["idle", "--personal"]).channel_of(7), "bench-7");
        let a2 = parse(&["floor", "--writer-cpu", "0", "--sink-cpu", "1"]);
        assert_eq!((a2.writer_cpu, a2.sink_cpu), (Some(0), Some(1)));
        assert!(!a2.publishes());
        a2.validate().unwrap();
        assert!(parse(&["floor", "--rate", "0"]).validate().is_err());
        assert_eq!(a.html.as_deref(), Some(std::path::Path::new("r.html")));
        a.validate().unwrap();
    }

    #[test]
    fn scale_options() {
        let a = parse(&["scale", "--channel", "s", "--first-index", "18000"]);
        assert_eq!(a.role, ScaleRole::Receive);
        assert_eq!(a.channel_of(0), "s-18000");
        assert_eq!(a.channel_of(5), "s-18005");
        assert!(!a.publishes());
        a.validate().unwrap();
        let a = parse(&[
            "scale", "--role", "publish", "--phase", "personal", "--rate", "10000",
        ]);
        assert_eq!(
            (a.role, a.phase, a.rate),
            (ScaleRole::Publish, ScalePhase::Personal, 10_000)
        );
        a.validate().unwrap();
        let a = parse(&["scale", "--role", "merge", "--inputs", "a.json", "b.json"]);
        assert_eq!(a.inputs.len(), 2);
        a.validate().unwrap();
        for bad in [
            &["scale", "--role", "merge"][..],
            &["scale", "--broadcasts", "0"],
            &["scale", "--broadcast-interval-ms", "0"],
            &["scale", "--first-index", "4294967296"],
        ] {
            assert!(
                matches!(parse(bad).validate(), Err(BenchError::InvalidArgs(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn api_url_sends_api_calls_elsewhere_and_stays_on_loopback() {
        let a = parse(&[
            "--url",
            "http://127.0.0.1:9000",
            "--api-url",
            "http://127.0.0.1:9001",
        ]);
        let t = a.validate().unwrap();
        assert_eq!(t.ws_url(), "ws://127.0.0.1:9000/connection/websocket");
        assert_eq!(t.api_url("publish"), "http://127.0.0.1:9001/api/publish");
        let a = parse(&["--api-url", "http://10.0.0.1:9001"]);
        assert!(a.validate().is_err(), "a remote API target is refused");
    }

    #[test]
    fn hard_caps() {
        for bad in [
            &["--connections", "0"][..],
            &["--connections", "100001"],
            &["--duration", "0"],
            &["--duration", "3601"],
            &["--rate", "0"],
            &["--rate", "10001"],
            &["--payload-bytes", "1048577"],
            &["--warmup", "61"],
            &["--channel", ""],
        ] {
            assert!(
                matches!(parse(bad).validate(), Err(BenchError::InvalidArgs(_))),
                "{bad:?}"
            );
        }
        parse(&["--connections", "100000", "--duration", "3600"])
            .validate()
            .unwrap();
    }

    #[test]
    fn loopback_only_by_default() {
        let remote = parse(&["--url", "http://10.0.0.1:8000"]);
        assert!(matches!(
            remote.validate(),
            Err(BenchError::RemoteTarget(h)) if h == "10.0.0.1"
        ));
        parse(&["--url", "http://10.0.0.1:8000", "--allow-remote"])
            .validate()
            .unwrap();
        parse(&["--url", "http://localhost:1"]).validate().unwrap();
        parse(&["--url", "http://[::1]:1"]).validate().unwrap();
    }
}
