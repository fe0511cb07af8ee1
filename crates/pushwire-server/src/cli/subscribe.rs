//! `pushwire sub CHANNEL`: subscribe with the Rust client and print every publication as one
//! JSON line on standard output, flushed per line, so it can feed a shell pipeline.
//!
//! Line shape: `{"channel":"…","offset":N,"data":<payload>,"tags":{…}}` (`tags` only when the
//! publication has some). The payload is embedded as JSON when it is JSON, as a JSON string
//! otherwise (protobuf connections may carry any bytes). Status goes to standard error.
//! The command reconnects and recovers by itself; it exits non-zero on a terminal disconnect
//! (bad token, …), a refused subscription or a bad URL, and 0 on Ctrl-C / SIGTERM, after
//! `--count` publications, or when standard output is closed.

use std::io::Write;

use anyhow::Context;
use pushwire_client::{
    Client, ClientConfig, Event, Protocol, Publication, State, SubState, SubscriptionOptions,
};
use serde_json::value::RawValue;

/// `pushwire sub` options.
#[derive(Debug, clap::Args)]
pub struct SubArgs {
    /// Channel to subscribe to.
    pub channel: String,
    /// WebSocket endpoint (`ws://` or `wss://`).
    #[arg(
        long,
        env = "PUSHWIRE_URL",
        default_value = "ws://127.0.0.1:8000/connection/websocket"
    )]
    pub url: String,
    /// Connection token (JWT); anonymous without it.
    #[arg(long, env = "PUSHWIRE_TOKEN")]
    pub token: Option<String>,
    /// Use the Protobuf protocol instead of JSON.
    #[arg(long)]
    pub protobuf: bool,
    /// PEM file of extra root certificates trusted for `wss://` (besides the system's).
    #[arg(long, env = "PUSHWIRE_TLS_CA_FILE")]
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Exit after this many publications (0: never).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
}

/// One output line.
fn line(channel: &str, p: &Publication) -> anyhow::Result<String> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        channel: &'a str,
        offset: u64,
        data: &'a RawValue,
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        tags: &'a std::collections::BTreeMap<String, String>,
    }
    let bytes = p.data.as_bytes();
    let as_string;
    let data: Box<RawValue> = match serde_json::from_slice::<&RawValue>(bytes) {
        Ok(raw) => raw.to_owned(),
        Err(_) => {
            as_string = serde_json::to_string(&String::from_utf8_lossy(bytes))?;
            RawValue::from_string(as_string)?
        }
    };
    // Raw JSON may hold newlines; a line must stay one line.
    let text = serde_json::to_string(&Line {
        channel,
        offset: p.offset,
        data: &data,
        tags: &p.tags,
    })?;
    Ok(text.replace('\n', ""))
}

/// Runs `pushwire sub`.
pub async fn run(args: SubArgs) -> anyhow::Result<()> {
    let mut config = ClientConfig::new(&args.url).name("pushwire-cli");
    if args.protobuf {
        config = config.protocol(Protocol::Protobuf);
    }
    if let Some(t) = &args.token {
        config = config.token(t.clone());
    }
    if let Some(path) = &args.tls_ca_file {
        let pem =
            std::fs::read(path).with_context(|| format!("--tls-ca-file {}", path.display()))?;
        config = config.tls_root_certificates_pem(pem);
    }
    let (client, mut events) = Client::new(config).context("sub")?;
    client.connect();
    client
        .new_subscription(&args.channel, SubscriptionOptions::default())?
        .subscribe()
        .await?;
    let stdout = std::io::stdout();
    let mut printed = 0u64;
    let result = loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = shutdown_signal() => break Ok(()),
        };
        let Some(event) = event else {
            break Ok(());
        };
        match event {
            Event::Publication {
                channel,
                publication,
            } => {
                let text = line(&channel, &publication)?;
                let mut out = stdout.lock();
                if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                    break Ok(()); // stdout closed: the pipeline is done.
                }
                printed += 1;
                if args.count > 0 && printed >= args.count {
                    break Ok(());
                }
            }
            Event::Subscribed {
                channel,
                was_recovering,
                recovered,
                ..
            } => {
                if was_recovering && !recovered {
                    eprintln!("subscribed to {channel}; publications were missed and could not be recovered");
                } else if was_recovering {
                    eprintln!("subscribed to {channel} (recovered)");
                } else {
                    eprintln!("subscribed to {channel}");
                }
            }
            Event::SubState {
                channel,
                state: SubState::Unsubscribed,
                code,
                reason,
            } => {
                break Err(anyhow::anyhow!(
                    "unsubscribed from {channel}: {reason} ({code})"
                ))
            }
            Event::State {
                state: State::Disconnected,
                code,
                reason,
            } => break Err(anyhow::anyhow!("disconnected: {reason} ({code})")),
            Event::State {
                state: State::Connecting,
                code,
                reason,
            } if code != pushwire_client::codes::CONNECT_CALLED => {
                eprintln!("reconnecting: {reason} ({code})");
            }
            Event::Error(e) => eprintln!("{e}"),
            Event::SubscriptionError { channel, error } => eprintln!("{channel}: {error}"),
            _ => {}
        }
    };
    client.close().await;
    result
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_embed_json_and_quote_other_bytes() {
        let mut p = Publication {
            data: pushwire_client::RawJson::from_bytes(&b"{\"a\":\n1}"[..]),
            offset: 3,
            ..Default::default()
        };
        assert_eq!(
            line("ch", &p).unwrap(),
            r#"{"channel":"ch","offset":3,"data":{"a":1}}"#
        );
        p.data = pushwire_client::RawJson::from_bytes(&b"\x01bin"[..]);
        p.tags.insert("k".into(), "v".into());
        assert_eq!(
            line("ch", &p).unwrap(),
            "{\"channel\":\"ch\",\"offset\":3,\"data\":\"\\u0001bin\",\"tags\":{\"k\":\"v\"}}"
        );
    }
}
