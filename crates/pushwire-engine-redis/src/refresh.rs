//! The periodic refresh both presence entries and per-user connection counts need: every third
//! of their TTL, until the owner is dropped or the engine stops.

use std::sync::Weak;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

/// Calls `refresh` on the owner every `ttl / 3` (the first time one period after start) until
/// `cancel` fires or the owner behind `owner` is gone.
pub(crate) async fn every_third_of<T: Send + Sync>(
    owner: Weak<T>,
    ttl: Duration,
    cancel: CancellationToken,
    refresh: for<'a> fn(&'a T) -> BoxFuture<'a, ()>,
) {
    let mut tick = tokio::time::interval(ttl / 3);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(owner) = owner.upgrade() else {
            return;
        };
        refresh(&owner).await;
    }
}
