//! [`Shared`]: the state every handle ([`crate::Client`], [`crate::Subscription`]) holds,
//! and the calls they make through the connection task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use pushwire_protocol::{HistoryResult, PresenceResult, PresenceStatsResult, Protocol, Reply};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::codec::{self, Body, Since};
use crate::error::{ClientError, ServerError};
use crate::ops::{HistoryOptions, Intent, Op, Status, SubscriptionOptions, Want};
use crate::state::SubState;

/// State shared by the handles.
pub(crate) struct Shared {
    pub(crate) ops: mpsc::Sender<Op>,
    pub(crate) intent: watch::Sender<Intent>,
    pub(crate) status: Arc<watch::Sender<Status>>,
    pub(crate) sub_states: Arc<Mutex<HashMap<String, SubState>>>,
    pub(crate) sub_opts: Mutex<HashMap<String, SubscriptionOptions>>,
    pub(crate) protocol: Protocol,
    pub(crate) timeout: Duration,
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
    pub(crate) cancel: CancellationToken,
    pub(crate) _stop: DropGuard,
}

impl Shared {
    pub(crate) async fn op(&self, op: Op) -> Result<(), ClientError> {
        let op = match op {
            Op::Subscribe { channel, .. } => {
                let opts = self
                    .sub_opts
                    .lock()
                    .get(&channel)
                    .cloned()
                    .unwrap_or_default();
                Op::Subscribe { channel, opts }
            }
            other => other,
        };
        self.ops.send(op).await.map_err(|_| ClientError::Closed)
    }

    pub(crate) async fn call(&self, body: Body) -> Result<Reply, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op::Call { body, reply: tx })
            .await
            .map_err(|_| ClientError::Closed)?;
        let reply = match tokio::time::timeout(self.timeout, rx).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(_)) => return Err(ClientError::Closed),
            Ok(Ok(r)) => r?,
        };
        match reply.error {
            Some(e) => Err(ClientError::Server(ServerError::from(e))),
            None => Ok(reply),
        }
    }

    pub(crate) async fn publish(&self, channel: &str, data: Bytes) -> Result<(), ClientError> {
        let data = codec::check_data(self.protocol, &data)?;
        let reply = self
            .call(Body::Publish {
                channel: channel.to_owned(),
                data,
            })
            .await?;
        reply.publish.map(|_| ()).ok_or_else(|| missing("publish"))
    }

    pub(crate) async fn history(
        &self,
        channel: &str,
        opts: HistoryOptions,
    ) -> Result<HistoryResult, ClientError> {
        let reply = self
            .call(Body::History {
                channel: channel.to_owned(),
                limit: opts.limit,
                since: opts.since.map(|(offset, epoch)| Since { offset, epoch }),
                reverse: opts.reverse,
            })
            .await?;
        reply.history.ok_or_else(|| missing("history"))
    }

    pub(crate) async fn presence(&self, channel: &str) -> Result<PresenceResult, ClientError> {
        let reply = self
            .call(Body::Presence {
                channel: channel.to_owned(),
            })
            .await?;
        reply.presence.ok_or_else(|| missing("presence"))
    }

    pub(crate) async fn presence_stats(
        &self,
        channel: &str,
    ) -> Result<PresenceStatsResult, ClientError> {
        let reply = self
            .call(Body::PresenceStats {
                channel: channel.to_owned(),
            })
            .await?;
        reply
            .presence_stats
            .ok_or_else(|| missing("presence_stats"))
    }

    pub(crate) fn set_want(&self, want: Want) {
        self.intent.send_modify(|i| {
            i.want = want;
            i.generation += 1;
        });
    }
}

fn missing(what: &str) -> ClientError {
    ClientError::Protocol(format!("reply without a {what} result"))
}
