//! Error code → HTTP status, in one table for every surface that answers errors with a
//! status: the server API in transport error mode (Centrifugo's mapping, kept exactly for
//! compatibility: 100 → 500, 102/104 → 404, 107/108 → 400, 112 → 416, 113 → 409, anything
//! else → 500), and the long-poll endpoint, which also tells an auth failure (401/403) and a
//! rate limit (429) apart so a plain HTTP client can act on the status alone.

use axum::http::StatusCode;

/// Where an error code is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The server API with `error_mode = "transport"` (or the per-request header).
    ApiTransportMode,
    /// `/connection/long_poll`.
    LongPoll,
}

/// One row per code with a status of its own: `(code, API transport mode, long-poll)`.
const TABLE: [(u32, u16, u16); 12] = [
    (100, 500, 500), // internal
    (101, 500, 401), // unauthorized
    (102, 404, 404), // unknown channel
    (103, 500, 403), // permission denied
    (104, 404, 400), // method not found
    (106, 500, 400), // limit exceeded
    (107, 400, 400), // bad request
    (108, 400, 400), // not available
    (109, 500, 401), // token expired
    (111, 500, 429), // too many requests
    (112, 416, 400), // unrecoverable position
    (113, 409, 400), // conflict
];

/// The HTTP status for error `code` on `surface`; a code without a row is 500 on the API
/// (Centrifugo's "anything else") and 400 on long-poll.
pub fn http_status(code: u32, surface: Surface) -> StatusCode {
    let row = TABLE.iter().find(|(c, _, _)| *c == code);
    let status = match (row, surface) {
        (Some((_, api, _)), Surface::ApiTransportMode) => *api,
        (Some((_, _, poll)), Surface::LongPoll) => *poll,
        (None, Surface::ApiTransportMode) => 500,
        (None, Surface::LongPoll) => 400,
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_keeps_centrifugos_mapping() {
        let api = |c| http_status(c, Surface::ApiTransportMode).as_u16();
        for (code, status) in [
            (100, 500),
            (101, 500),
            (102, 404),
            (104, 404),
            (107, 400),
            (108, 400),
            (111, 500),
            (112, 416),
            (113, 409),
            (4242, 500),
        ] {
            assert_eq!(api(code), status, "code {code}");
        }
    }

    #[test]
    fn long_poll_tells_auth_and_rate_failures_apart() {
        let poll = |c| http_status(c, Surface::LongPoll).as_u16();
        for (code, status) in [
            (100, 500),
            (101, 401),
            (109, 401),
            (103, 403),
            (102, 404),
            (111, 429),
            (107, 400),
            (4242, 400),
        ] {
            assert_eq!(poll(code), status, "code {code}");
        }
    }
}
