//! Fossil delta compression toward subscribers that negotiated it (`delta: "fossil"` in
//! subscribe, allowed by the namespace's `allowed_delta_types`).
//!
//! Such a subscriber gets every publication of the channel either in full or, when the
//! publication allows it (API `delta`, namespace `delta_publish`), the subscriber holds the
//! channel's previous payload and the delta is smaller, as a Fossil delta against that
//! payload (`delta: true`). In the JSON protocol the payload of these subscribers always
//! travels as a JSON *string* holding the JSON text, as Centrifugo sends it and
//! centrifuge-js expects it; in protobuf it is raw bytes.
//!
//! [`DeltaOnce`] computes the delta once per publication and encodes each form once per
//! encoding, like [`crate::encoding::EncodeOnce`] does for everybody else.
//! [`chain_recovered`] rewrites the publications of a subscribe result the same way.

use bytes::Bytes;
use pushwire_protocol::{fossil, Protocol, Publication, Push, RawJson};

use crate::encoding::Encoding;
use crate::memo::Memo;

/// The only delta type.
pub const FOSSIL: &str = "fossil";

/// `bytes` as a JSON string value; `None` if they are not UTF-8.
pub fn json_string(bytes: &[u8]) -> Option<RawJson> {
    let text = std::str::from_utf8(bytes).ok()?;
    let quoted = serde_json::to_string(text).ok()?;
    Some(RawJson::from_bytes(quoted))
}

/// `p` with `data` (full payload or delta) in the form a delta subscriber of `protocol`
/// receives; `None` when the JSON protocol can not carry it (not UTF-8).
fn shaped(p: &Publication, data: &[u8], delta: bool, protocol: Protocol) -> Option<Publication> {
    let data = match protocol {
        Protocol::Json => json_string(data)?,
        Protocol::Protobuf => RawJson::from_bytes(Bytes::copy_from_slice(data)),
    };
    Some(Publication {
        data,
        delta,
        ..p.clone()
    })
}

/// One publication for the delta subscribers of a channel: the delta against the previous
/// payload is computed at most once, each (encoding, form) encoded at most once.
#[derive(Debug)]
pub struct DeltaOnce<'a> {
    channel: &'a str,
    publication: &'a Publication,
    prev: Option<&'a [u8]>,
    patch: Memo<Vec<u8>>,
    /// `[encoding][0 = full, 1 = delta]`.
    cache: [[Memo<Bytes>; 2]; Encoding::COUNT],
}

impl<'a> DeltaOnce<'a> {
    /// A cache for `publication` on `channel`; `prev` is the channel's previous payload when
    /// the publication may go as a delta.
    pub fn new(channel: &'a str, publication: &'a Publication, prev: Option<&'a [u8]>) -> Self {
        DeltaOnce {
            channel,
            publication,
            prev: prev.filter(|_| publication.delta),
            patch: Memo::Pending,
            cache: Default::default(),
        }
    }

    /// The delta, when there is a base and it is smaller than the payload.
    fn patch(&mut self) -> Option<&[u8]> {
        let (prev, data) = (self.prev, self.publication.data.as_bytes());
        self.patch
            .get_or_compute(|| {
                let prev = prev?;
                let d = fossil::create(prev, data);
                (d.len() < data.len()).then_some(d)
            })
            .map(Vec::as_slice)
    }

    /// The push for a subscriber in `encoding`; a delta when `holds_prev` (the subscriber
    /// holds the previous payload) and a delta is worth it, else the full payload. Returns the
    /// bytes, or `None` when the payload can not be sent in `encoding` at all.
    pub fn get(&mut self, encoding: Encoding, holds_prev: bool) -> Option<Bytes> {
        if holds_prev
            && self.patch().is_some()
            && let Some(b) = self.encoded(encoding, true)
        {
            return Some(b);
        }
        // A JSON string can not carry a delta that cuts a UTF-8 character: full instead.
        self.encoded(encoding, false)
    }

    fn encoded(&mut self, encoding: Encoding, delta: bool) -> Option<Bytes> {
        let (channel, publication, patch) = (self.channel, self.publication, &self.patch);
        self.cache[encoding.index()][usize::from(delta)]
            .get_or_compute(|| {
                let data = if delta {
                    patch.value()?.as_slice()
                } else {
                    publication.data.as_bytes()
                };
                let p = shaped(publication, data, delta, encoding.protocol)?;
                let push = Push {
                    channel: channel.to_owned(),
                    publication: Some(p),
                    ..Default::default()
                };
                encoding.push(&push).ok()
            })
            .cloned()
    }
}

/// Rewrites recovered publications for a delta subscriber of `protocol`: the first in full,
/// each next one as a delta against the one before when that is smaller (as Centrifugo
/// does). Publications JSON can not carry as a string are left unchanged.
pub fn chain_recovered(publications: &mut [Publication], protocol: Protocol) {
    let mut prev: Option<RawJson> = None;
    for p in publications.iter_mut() {
        let full = p.data.clone();
        let patch = prev
            .as_ref()
            .map(|b| fossil::create(b.as_bytes(), full.as_bytes()))
            .filter(|d| d.len() < full.as_bytes().len());
        let shaped_pub = patch
            .and_then(|d| shaped(p, &d, true, protocol))
            .or_else(|| shaped(p, full.as_bytes(), false, protocol));
        if let Some(s) = shaped_pub {
            *p = s;
        }
        prev = Some(full);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json() -> Encoding {
        Encoding {
            protocol: Protocol::Json,
            bare_push: false,
        }
    }

    fn doc(n: u32) -> Publication {
        let mut s = String::from("{");
        for i in 0..20 {
            s.push_str(&format!("\"field_{i}\":\"some value {i}\","));
        }
        s.push_str(&format!("\"n\":{n}}}"));
        Publication {
            data: RawJson::from_json_str(&s).unwrap(),
            offset: u64::from(n),
            delta: true,
            ..Default::default()
        }
    }

    /// The `data` field of an encoded JSON push, and its `delta` flag.
    fn data_of(b: &[u8]) -> (String, bool) {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        let p = &v["push"]["pub"];
        (
            p["data"]
                .as_str()
                .expect("data is a JSON string")
                .to_owned(),
            p["delta"].as_bool().unwrap_or(false),
        )
    }

    #[test]
    fn full_payload_travels_as_a_json_string() {
        let p = doc(1);
        let mut once = DeltaOnce::new("ch", &p, None);
        let (data, delta) = data_of(&once.get(json(), true).unwrap());
        assert!(!delta);
        assert_eq!(data.as_bytes(), p.data.as_bytes());
    }

    #[test]
    fn delta_applies_to_the_previous_payload_and_is_shared() {
        let (a, b) = (doc(1), doc(2));
        let mut once = DeltaOnce::new("ch", &b, Some(a.data.as_bytes()));
        let first = once.get(json(), true).unwrap();
        let again = once.get(json(), true).unwrap();
        assert_eq!(first.as_ptr(), again.as_ptr(), "encoded once");
        let (data, delta) = data_of(&first);
        assert!(delta);
        assert!(data.len() * 5 < b.data.as_bytes().len());
        let rebuilt = fossil::apply(a.data.as_bytes(), data.as_bytes()).unwrap();
        assert_eq!(rebuilt, b.data.as_bytes());
        // A subscriber that does not hold the base gets the full payload.
        assert!(!data_of(&once.get(json(), false).unwrap()).1);
    }

    #[test]
    fn no_delta_unless_the_publication_allows_it() {
        let a = doc(1);
        let mut b = doc(2);
        b.delta = false;
        let mut once = DeltaOnce::new("ch", &b, Some(a.data.as_bytes()));
        assert!(!data_of(&once.get(json(), true).unwrap()).1);
    }

    #[test]
    fn protobuf_carries_raw_delta_bytes() {
        let (a, b) = (doc(1), doc(2));
        let pb = Encoding {
            protocol: Protocol::Protobuf,
            bare_push: true,
        };
        let mut once = DeltaOnce::new("ch", &b, Some(a.data.as_bytes()));
        let bytes = once.get(pb, true).unwrap();
        use pushwire_protocol::prost::Message;
        let push = pushwire_protocol::pb::Push::decode_length_delimited(&bytes[..]).unwrap();
        let p = push.r#pub.unwrap();
        assert!(p.delta);
        assert_eq!(
            fossil::apply(a.data.as_bytes(), &p.data).unwrap(),
            b.data.as_bytes()
        );
    }

    #[test]
    fn recovered_publications_chain() {
        let mut pubs = vec![doc(1), doc(2), doc(3)];
        let originals: Vec<Vec<u8>> = pubs.iter().map(|p| p.data.as_bytes().to_vec()).collect();
        chain_recovered(&mut pubs, Protocol::Json);
        assert!(!pubs[0].delta && pubs[1].delta && pubs[2].delta);
        let mut base: Vec<u8> = serde_json::from_slice::<String>(pubs[0].data.as_bytes())
            .unwrap()
            .into_bytes();
        assert_eq!(base, originals[0]);
        for (p, want) in pubs.iter().zip(&originals).skip(1) {
            let d: String = serde_json::from_slice(p.data.as_bytes()).unwrap();
            base = fossil::apply(&base, d.as_bytes()).unwrap();
            assert_eq!(&base, want);
        }
    }
}
