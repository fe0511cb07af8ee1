//! Limits of the server API's multi-command calls (`http_api.batch_max_commands`,
//! `http_api.batch_max_reply_size`), shared by every path into the API's dispatch (HTTP batch,
//! the legacy `/api` route, and whatever else dispatches batches).

use serde::{Deserialize, Serialize};

/// Bounds on one multi-command API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct ApiLimits {
    /// Commands one batch (or one legacy body) may hold; more is refused whole with 106.
    pub batch_max_commands: usize,
    /// Once the replies of a batch pass this many bytes, its remaining commands are not run
    /// and answer 106 (commands already running in a parallel batch still finish).
    pub batch_max_reply_size: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            batch_max_commands: 1000,
            batch_max_reply_size: 16 * 1024 * 1024,
        }
    }
}
