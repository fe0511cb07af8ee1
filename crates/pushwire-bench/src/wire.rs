//! The client side of the JSON wire protocol: the frame the bench sends on connect and what
//! each incoming line means.

use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

/// Command id of `connect` in the hello frame.
pub(crate) const CONNECT_ID: u32 = 1;
/// Command id of the first `subscribe` in the hello frame; the next ones count up from it.
pub(crate) const SUBSCRIBE_ID: u32 = 2;
/// Pong (and ping) message.
pub(crate) const PONG: &str = "{}";

/// `connect` and one `subscribe` per channel (ids [`SUBSCRIBE_ID`], `SUBSCRIBE_ID + 1`, …;
/// asking for `delta` compression when given) batched in one frame, separated by `\n`.
pub(crate) fn hello_frame(token: Option<&str>, channels: &[&str], delta: Option<&str>) -> String {
    let connect = match token {
        Some(token) => json!({"id": CONNECT_ID, "connect": {"token": token, "name": "bench"}}),
        None => json!({"id": CONNECT_ID, "connect": {"name": "bench"}}),
    };
    let mut frame = connect.to_string();
    for (id, channel) in (SUBSCRIBE_ID..).zip(channels) {
        let subscribe = match delta {
            Some(d) => json!({"id": id, "subscribe": {"channel": channel, "delta": d}}),
            None => json!({"id": id, "subscribe": {"channel": channel}}),
        };
        frame.push('\n');
        frame.push_str(&subscribe.to_string());
    }
    frame
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

#[derive(Deserialize)]
struct DeltaLine {
    push: Option<DeltaPush>,
}

#[derive(Deserialize)]
struct DeltaPush {
    #[serde(rename = "pub")]
    publication: Option<DeltaPub>,
}

#[derive(Deserialize)]
struct DeltaPub {
    data: String,
    #[serde(default)]
    delta: bool,
}

/// A publication of a delta subscription, whose `data` is a JSON string: the text (full
/// payload) or a Fossil delta, and whether it is a delta. `None` for anything else.
pub(crate) fn delta_publication(line: &[u8]) -> Option<(String, bool)> {
    let p = serde_json::from_slice::<DeltaLine>(line)
        .ok()?
        .push?
        .publication?;
    Some((p.data, p.delta))
}

/// `ts` and `seq` of a bench payload.
pub(crate) fn bench_fields(data: &[u8]) -> Option<(u64, u64)> {
    serde_json::from_slice::<BenchData>(data)
        .ok()
        .map(|d| (d.ts, d.seq))
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
    if let Some((ts, seq)) = fast_publication(line) {
        return Incoming::Publication { ts, seq };
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

/// Fast path for the push the server sends for a bench publication,
/// `{"push":{"channel":"…","pub":{"data":{"ts":N,"seq":N,…`: reads the two numbers without
/// parsing the whole line (at a million deliveries per second the full parse would be the
/// bench's bottleneck). `None` for any other shape; the caller then parses fully.
fn fast_publication(line: &[u8]) -> Option<(u64, u64)> {
    let rest = line.strip_prefix(br#"{"push":{"channel":""#)?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    let rest = rest[end + 1..].strip_prefix(br#","pub":{"data":{"ts":"#)?;
    let (ts, rest) = leading_number(rest)?;
    let rest = rest.strip_prefix(br#","seq":"#)?;
    let (seq, rest) = leading_number(rest)?;
    matches!(rest.first(), Some(b',' | b'}')).then_some((ts, seq))
}

/// The decimal number at the start of `b` and what follows it.
fn leading_number(b: &[u8]) -> Option<(u64, &[u8])> {
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let value = std::str::from_utf8(&b[..digits]).ok()?.parse().ok()?;
    Some((value, &b[digits..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_with_and_without_token() {
        let f = hello_frame(None, &["bench"], None);
        let mut parts = f.split('\n');
        let c: serde_json::Value = serde_json::from_str(parts.next().unwrap()).unwrap();
        assert_eq!(c, json!({"id":1,"connect":{"name":"bench"}}));
        let s: serde_json::Value = serde_json::from_str(parts.next().unwrap()).unwrap();
        assert_eq!(s, json!({"id":2,"subscribe":{"channel":"bench"}}));
        assert!(parts.next().is_none());
        let f = hello_frame(Some("jwt"), &["a\"b"], Some("fossil"));
        assert!(f.contains(r#""delta":"fossil""#));
        assert!(f.contains(r#""token":"jwt""#));
        assert!(f.contains(r#""channel":"a\"b""#));
        let f = hello_frame(None, &["p-7", "shared"], None);
        let lines: Vec<serde_json::Value> = f
            .split('\n')
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], json!({"id":2,"subscribe":{"channel":"p-7"}}));
        assert_eq!(lines[2], json!({"id":3,"subscribe":{"channel":"shared"}}));
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

    #[test]
    fn fast_path_agrees_with_full_parse() {
        let line = br#"{"push":{"channel":"bench-3","pub":{"data":{"ts":1700000000123456789,"seq":42,"pad":"xx"},"offset":7}}}"#;
        assert_eq!(
            fast_publication(line),
            Some((1_700_000_000_123_456_789, 42))
        );
        assert_eq!(
            parse_line(line),
            Incoming::Publication {
                ts: 1_700_000_000_123_456_789,
                seq: 42
            }
        );
        // Other shapes fall back to the full parse.
        let reordered = br#"{"push":{"channel":"b","pub":{"data":{"seq":1,"ts":2}}}}"#;
        assert_eq!(fast_publication(reordered), None);
        assert_eq!(
            parse_line(reordered),
            Incoming::Publication { ts: 2, seq: 1 }
        );
        let escaped = br#"{"push":{"channel":"a\"b","pub":{"data":{"ts":1,"seq":2}}}}"#;
        assert_eq!(fast_publication(escaped), None);
        assert_eq!(parse_line(escaped), Incoming::Publication { ts: 1, seq: 2 });
        assert_eq!(
            fast_publication(br#"{"push":{"channel":"b","pub":{"data":{"ts":1,"seq":2x"#),
            None
        );
        assert_eq!(
            fast_publication(
                br#"{"push":{"channel":"b","pub":{"data":{"ts":99999999999999999999,"seq":2}"#
            ),
            None
        );
    }
}
