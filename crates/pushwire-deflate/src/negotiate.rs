//! The `Sec-WebSocket-Extensions` handshake of permessage-deflate (RFC 7692 section 7.1).

/// What the server answers to an acceptable offer: no context takeover in either direction,
/// so each message is compressed on its own and no compression context outlives a message.
/// A server may add both parameters even when the offer did not (RFC 7692 7.1.1.1/7.1.1.2).
pub const RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// What a pushwire client (the bench, tests) offers: the same parameters as [`RESPONSE`].
pub const OFFER: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Whether any offer in the request's `Sec-WebSocket-Extensions` values is one the server
/// can accept. An offer is accepted when its parameters are all known, none repeats, and it
/// does not ask for a server window below 15 bits (the compressor always uses 32 KiB);
/// `client_max_window_bits` in any form is fine (the inflater takes any window). Offers of
/// other extensions, or permessage-deflate offers the server cannot honour, are skipped as
/// RFC 7692 allows.
pub fn accepts<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .any(acceptable_offer)
}

fn acceptable_offer(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate"))
    {
        return false;
    }
    let mut seen = [false; 4];
    for param in parts {
        if param.is_empty() {
            continue;
        }
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (param, None),
        };
        let slot = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => 0,
            "client_no_context_takeover" if value.is_none() => 1,
            "server_max_window_bits" => match value.map(str::parse::<u8>) {
                Some(Ok(15)) => 2,
                _ => return false,
            },
            "client_max_window_bits" => match value.map(str::parse::<u8>) {
                None => 3,
                Some(Ok(8..=15)) => 3,
                _ => return false,
            },
            _ => return false,
        };
        if std::mem::replace(&mut seen[slot], true) {
            return false;
        }
    }
    true
}

/// Whether a server's `Sec-WebSocket-Extensions` answer accepted permessage-deflate (for
/// clients that offered [`OFFER`]).
pub fn accepted<'a>(values: impl IntoIterator<Item = &'a str>) -> bool {
    values.into_iter().flat_map(|v| v.split(',')).any(|e| {
        e.split(';')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("permessage-deflate"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_and_python_offers_are_accepted() {
        // Chromium's offer, and websockets' (Python) default.
        assert!(accepts(["permessage-deflate; client_max_window_bits"]));
        assert!(accepts([
            "permessage-deflate; client_max_window_bits=15; server_max_window_bits=15"
        ]));
        assert!(accepts([OFFER]));
        assert!(accepts(["x-webkit-deflate-frame", "permessage-deflate"]));
        assert!(accepts([
            "permessage-deflate; server_max_window_bits=10, permessage-deflate"
        ]));
    }

    #[test]
    fn offers_the_server_cannot_honour_are_skipped() {
        assert!(!accepts(["permessage-deflate; server_max_window_bits=10"]));
        assert!(!accepts(["permessage-deflate; server_max_window_bits"]));
        assert!(!accepts(["permessage-deflate; client_max_window_bits=7"]));
        assert!(!accepts(["permessage-deflate; unknown_param"]));
        assert!(!accepts([
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover"
        ]));
        assert!(!accepts(["x-webkit-deflate-frame"]));
        assert!(!accepts(std::iter::empty()));
    }

    #[test]
    fn answers_are_recognised() {
        assert!(accepted([RESPONSE]));
        assert!(!accepted(["x-other"]));
    }
}
