//! The client side of the JSON wire protocol: the frame the bench sends on connect and what
//! each incoming line means.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

/// Command id of `connect` in the hello frame.
pub(crate) const CONNECT_ID: u32 = 1;
/// Command id of `subscribe` in the hello frame.
pub(crate) const SUBSCRIBE_ID: u32 = 2;
/// Pong (and ping) message.
pub(crate) const PONG: &str = "{}";

/// `connect` and `subscribe` batched in one frame, separated by `\n`.
pub(crate) fn hello_frame(token: Option<&str>, channel: &str) -> String {
    let connect = match token {
        Some(token) => json!({"id": CONNECT_ID, "connect": {"token": token, "name": "bench"}}),
        None => json!({"id": CONNECT_ID, "connect": {"name": "bench"}}),
    };
    let subscribe = json!({"id": SUBSCRIBE_ID, "subscribe": {"channel": channel}});
    format!("{connect}\n{subscribe}")
}

/// What one incoming message means to the bench.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// Server ping (`{}`): answer with [`PONG`].
    Ping,
    /// Reply to command `id`; `error` describes the failure when the command failed.
    Reply {
        /// Command id.
        id: u32,
        /// `code: message` of an error reply.
        error: Option<String>,
    },
    /// A publication made by the bench publisher.
    Publication {
        /// Publish time, Unix nanoseconds.
        ts: u64,
        /// Publication sequence number.
        seq: u64,
    },
    /// The server unsubscribed or disconnected the client; nothing more will arrive.
    Ended(String),
    /// Anything else: other pushes, foreign publications, unparsable lines.
    Other,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default)]
    id: u32,
    error: Option<ErrorBody>,
    #[serde(borrow)]
    push: Option<PushBody<'a>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct PushBody<'a> {
    #[serde(rename = "pub", borrow)]
    publication: Option<PubBody<'a>>,
    disconnect: Option<EndBody>,
    unsubscribe: Option<EndBody>,
}

#[derive(Deserialize)]
struct PubBody<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct EndBody {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct BenchData {
    ts: u64,
    seq: u64,
}

/// Splits a frame on `\n`, skipping blank lines.
pub(crate) fn lines(frame: &[u8]) -> impl Iterator<Item = &[u8]> {
    frame
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|l| !l.is_empty())
}

/// Classifies one message (one line of a frame).
pub(crate) fn parse_line(line: &[u8]) -> Incoming {
    if line == PONG.as_bytes() {
        return Incoming::Ping;
    }
    let Ok(msg) = serde_json::from_slice::<Line<'_>>(line) else {
        return Incoming::Other;
    };
    if let Some(push) = msg.push {
        if let Some(data) = push.publication.and_then(|p| p.data) {
            return match serde_json::from_str::<BenchData>(data.get()) {
                Ok(d) => Incoming::Publication {
                    ts: d.ts,
                    seq: d.seq,
                },
                Err(_) => Incoming::Other,
            };
        }
        if let Some(end) = push.disconnect {
            return Incoming::Ended(format!("disconnected {}: {}", end.code, end.reason));
        }
        if let Some(end) = push.unsubscribe {
            return Incoming::Ended(format!("unsubscribed {}: {}", end.code, end.reason));
        }
        return Incoming::Other;
    }
    let error = msg
        .error
        .map(|e| format!("error {}: {}", e.code, e.message));
    if msg.id == 0 && error.is_none() {
        return Incoming::Ping;
    }
    Incoming::Reply { id: msg.id, error }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_with_and_without_token() {
        let f = hello_frame(None, "bench");
        let mut parts = f.split('\n');
        let c: serde_json::Value = serde_json::from_str(parts.next().unwrap()).unwrap();
        assert_eq!(c, json!({"id":1,"connect":{"name":"bench"}}));
        let s: serde_json::Value = serde_json::from_str(parts.next().unwrap()).unwrap();
        assert_eq!(s, json!({"id":2,"subscribe":{"channel":"bench"}}));
        assert!(parts.next().is_none());
        let f = hello_frame(Some("jwt"), "a\"b");
        assert!(f.contains(r#""token":"jwt""#));
        assert!(f.contains(r#""channel":"a\"b""#));
    }

    #[test]
    fn splits_frames() {
        let got: Vec<_> = lines(b"{}\n\n {\"id\":1} \n").collect();
        assert_eq!(got, vec![&b"{}"[..], &b"{\"id\":1}"[..]]);
        assert_eq!(lines(b"\n\n").count(), 0);
    }

    #[test]
    fn classifies_messages() {
        assert_eq!(parse_line(b"{}"), Incoming::Ping);
        assert_eq!(
            parse_line(br#"{"id":1,"connect":{"client":"c","ping":25,"pong":true}}"#),
            Incoming::Reply { id: 1, error: None }
        );
        assert_eq!(
            parse_line(br#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#),
            Incoming::Reply {
                id: 2,
                error: Some("error 103: permission denied".into())
            }
        );
        assert_eq!(
            parse_line(
                br#"{"push":{"channel":"bench","pub":{"data":{"ts":17,"seq":3,"pad":"xx\"x"},"offset":4}}}"#
            ),
            Incoming::Publication { ts: 17, seq: 3 }
        );
        assert_eq!(
            parse_line(br#"{"push":{"channel":"bench","pub":{"data":"hello"}}}"#),
            Incoming::Other
        );
        assert_eq!(
            parse_line(br#"{"push":{"channel":"bench","join":{"info":{}}}}"#),
            Incoming::Other
        );
        assert_eq!(
            parse_line(br#"{"push":{"disconnect":{"code":3001,"reason":"shutdown"}}}"#),
            Incoming::Ended("disconnected 3001: shutdown".into())
        );
        assert_eq!(
            parse_line(br#"{"push":{"channel":"bench","unsubscribe":{"code":2000}}}"#),
            Incoming::Ended("unsubscribed 2000: ".into())
        );
        assert_eq!(parse_line(b"not json"), Incoming::Other);
    }
}
