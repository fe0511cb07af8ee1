//! Connection timers: stale close before connect, server pings, pong deadline, expiry.
//!
//! The transport sleeps until [`Client::next_deadline`] and then calls [`Client::on_timer`];
//! there is no task or timer per connection beyond the transport's one sleep.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pushwire_protocol::{Disconnect, Reply};
use rand::Rng;
use tokio::time::Instant;

use super::{Client, State, Status};
use crate::auth::unix_now;

const FAR: Duration = Duration::from_secs(24 * 3600);

/// An optional deadline in 8 bytes (an `Option<Instant>` takes 16, in every connection):
/// milliseconds since a process-wide epoch, plus one; 0 is unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct At(u64);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl At {
    fn of(i: Option<Instant>) -> At {
        At(i.map_or(0, |i| {
            i.saturating_duration_since(epoch()).as_millis() as u64 + 1
        }))
    }

    fn get(self) -> Option<Instant> {
        (self.0 > 0).then(|| epoch() + Duration::from_millis(self.0 - 1))
    }

    fn due(self, now: Instant) -> bool {
        self.get().is_some_and(|d| now >= d)
    }
}

#[derive(Debug)]
pub(super) struct Timers {
    stale: At,
    next_ping: At,
    pong_deadline: At,
    expire_check: At,
    sub_expire_check: At,
}

impl Timers {
    pub(super) fn new(stale: Instant) -> Self {
        Timers {
            stale: At::of(Some(stale)),
            next_ping: At::default(),
            pong_deadline: At::default(),
            expire_check: At::default(),
            sub_expire_check: At::default(),
        }
    }

    fn next(&self) -> Instant {
        [
            self.stale,
            self.next_ping,
            self.pong_deadline,
            self.expire_check,
            self.sub_expire_check,
        ]
        .into_iter()
        .filter_map(At::get)
        .min()
        .unwrap_or_else(|| Instant::now() + FAR)
    }
}

impl Client {
    /// When the transport must call [`Client::on_timer`] next.
    pub fn next_deadline(&self) -> Instant {
        self.state.lock().timers.next()
    }

    /// Fires due timers: queues a ping, ends subscriptions whose token expired without a
    /// refresh (Unsubscribe push 2501, so the SDK resubscribes with a new token), or returns the
    /// disconnect for a stale connection (3502), a missing pong (3012) or an expired
    /// connection (3005).
    pub fn on_timer(self: &Arc<Self>) -> Result<(), Disconnect> {
        let now = Instant::now();
        let cfg = &self.node.config().client;
        let mut st = self.state.lock();
        if let Some(stale) = st.timers.stale.get()
            && now >= stale
            && st.status != Status::Connected
        {
            return Err(Disconnect::STALE);
        }
        if st.timers.pong_deadline.due(now) {
            return Err(Disconnect::NO_PONG);
        }
        let mut refresh = false;
        let mut sub_refresh = Vec::new();
        if let Some(exp) = st.expire_at
            && st.timers.expire_check.due(now)
        {
            if self.refresh_proxied() {
                // Server-side refresh: the backend decides at expiry, no grace.
                if exp <= unix_now() {
                    refresh = true;
                    st.timers.expire_check = At::of(Some(now + self.refresh_recheck()));
                } else {
                    self.arm_expiry(&mut st);
                }
            } else {
                let close_at = exp + cfg.expired_close_delay.as_secs() as i64;
                let left = close_at - unix_now();
                if left <= 0 {
                    return Err(Disconnect::EXPIRED);
                }
                st.timers.expire_check = At::of(Some(now + Duration::from_secs(left as u64)));
            }
        }
        if st.timers.sub_expire_check.due(now) {
            let grace = cfg.expired_sub_close_delay.as_secs() as i64;
            let unix = unix_now();
            let refreshing: Vec<Arc<str>> = st
                .subs
                .iter()
                .filter(|(_, s)| {
                    !s.subscribing && s.proxy_refresh && s.expire_at.is_some_and(|e| e <= unix)
                })
                .map(|(c, _)| c.clone())
                .collect();
            for c in &refreshing {
                let recheck = self.sub_refresh_recheck(c);
                if let Some(s) = st.subs.get_mut(c) {
                    s.expire_at = Some(unix + recheck);
                }
            }
            sub_refresh = refreshing;
            let expired: Vec<Arc<str>> = st
                .subs
                .iter()
                .filter(|(_, s)| {
                    !s.subscribing
                        && !s.proxy_refresh
                        && s.expire_at.is_some_and(|e| e + grace <= unix)
                })
                .map(|(c, _)| c.clone())
                .collect();
            let removed: Vec<(Arc<str>, super::SubState)> = expired
                .into_iter()
                .filter_map(|c| st.subs.remove(&c).map(|s| (c, s)))
                .collect();
            self.arm_sub_expiry(&mut st);
            if !removed.is_empty() {
                drop(st);
                self.expire_subscriptions(removed);
                st = self.state.lock();
            }
        }
        if st.timers.next_ping.due(now) {
            st.timers.next_ping = At::of(Some(now + cfg.ping_interval));
            if self.expects_pong() && st.timers.pong_deadline.get().is_none() {
                st.timers.pong_deadline = At::of(Some(now + cfg.pong_timeout));
            }
            drop(st);
            self.send_reply(&Reply::default());
        } else {
            drop(st);
        }
        if refresh {
            self.node.spawn(self.clone().proxy_refresh());
        }
        if !sub_refresh.is_empty() {
            self.proxy_sub_refresh(sub_refresh);
        }
        Ok(())
    }

    fn expects_pong(&self) -> bool {
        !self.transport.unidirectional() && !self.node.config().client.pong_timeout.is_zero()
    }

    /// Ping interval in whole seconds for the connect result (0 = pings off).
    pub(super) fn ping_secs(&self) -> u32 {
        self.node.config().client.ping_interval.as_secs() as u32
    }

    /// Whether the connect result must say `pong: true`.
    pub(super) fn pong_flag(&self) -> bool {
        self.ping_secs() > 0 && self.expects_pong()
    }

    /// Arms pings (first one at a random point of the second half of the interval, to spread
    /// reconnect storms) and the expiry check. Called with the state locked at connect.
    pub(super) fn arm_timers(&self, st: &mut State) {
        let now = Instant::now();
        st.timers.stale = At::default();
        let interval = self.node.config().client.ping_interval;
        if !interval.is_zero() {
            let half = interval / 2;
            let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
            st.timers.next_ping = At::of(Some(now + half + Duration::from_millis(jitter)));
        }
        self.arm_expiry(st);
    }

    /// Re-arms the subscription expiry check for the earliest expiring subscription.
    pub(super) fn arm_sub_expiry(&self, st: &mut State) {
        let grace = self.node.config().client.expired_sub_close_delay.as_secs() as i64;
        let unix = unix_now();
        st.timers.sub_expire_check = At::of(
            st.subs
                .values()
                .filter(|s| !s.subscribing)
                .filter_map(|s| {
                    // Backend-refreshed subscriptions are looked at when they expire.
                    s.expire_at
                        .map(|e| if s.proxy_refresh { e } else { e + grace })
                })
                .min()
                .map(|at| Instant::now() + Duration::from_secs((at - unix).max(0) as u64)),
        );
    }

    fn expire_subscriptions(self: &Arc<Self>, removed: Vec<(Arc<str>, super::SubState)>) {
        for (channel, _) in &removed {
            // Out of the hub first: nothing is delivered after the Unsubscribe push.
            self.node.hub().unsubscribe(channel, self.key);
            self.send_reply(&Reply::push(pushwire_protocol::Push {
                channel: channel.to_string(),
                unsubscribe: Some(pushwire_protocol::Unsubscribe::EXPIRED),
                ..Default::default()
            }));
        }
        let this = self.clone();
        self.node.spawn(async move {
            for (channel, sub) in removed {
                this.release_subscription(&channel, &sub).await;
            }
        });
    }

    pub(super) fn arm_expiry(&self, st: &mut State) {
        st.timers.expire_check = At::of(st.expire_at.map(|exp| {
            let grace = if self.refresh_proxied() {
                0
            } else {
                self.node.config().client.expired_close_delay.as_secs() as i64
            };
            let left = (exp + grace - unix_now()).max(0) as u64;
            Instant::now() + Duration::from_secs(left)
        }));
    }

    /// A pong: clears the pong deadline. A pong nobody asked for is a protocol violation.
    pub(super) fn handle_pong(&self) -> Result<(), Disconnect> {
        let mut st = self.state.lock();
        if std::mem::take(&mut st.timers.pong_deadline).get().is_none() {
            drop(st);
            return Err(self.bad_request("unexpected pong"));
        }
        Ok(())
    }
}
