//! The Lua scripts (in `lua/`), loaded once and invoked by SHA (re-sent on `NOSCRIPT`, e.g.
//! after a Redis restart).

use std::sync::LazyLock;

use redis::Script;

/// Idempotency + version check, append, trim, TTLs and PUBLISH in one step.
pub(crate) static PUBLISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/publish.lua")));
/// Position (created if missing) and a range of publications in one step.
pub(crate) static HISTORY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/history.lua")));
/// Adds or refreshes presence entries of one channel.
pub(crate) static PRESENCE_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/presence_add.lua")));
/// Removes one presence entry.
pub(crate) static PRESENCE_REMOVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/presence_remove.lua")));
/// Drops expired presence entries and returns the rest.
pub(crate) static PRESENCE_GET: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/presence_get.lua")));
/// Adds or refreshes a user's connection ids under the per-user limit.
pub(crate) static CONNECTIONS_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/connections_add.lua")));
/// Adds a node to a channel's occupancy; tells whether the channel became occupied.
pub(crate) static OCCUPY: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/occupy.lua")));
/// Removes a node from a channel's occupancy; tells whether the channel became vacant.
pub(crate) static VACATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/vacate.lua")));
/// Records a node's heartbeat (Redis clock).
pub(crate) static HEARTBEAT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/heartbeat.lua")));
/// Removes silent nodes and their occupancy; returns the channels they left vacant.
pub(crate) static SWEEP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../lua/sweep.lua")));
