//! The one code path from a method and its params to a result, shared by `/api/<method>`,
//! `batch` and the legacy `/api` route.

use std::sync::atomic::{AtomicU32, Ordering};

use pushwire_core::Node;
use serde_json::value::RawValue;

use super::error::ApiError;
use super::method::Method;
use super::reply::ApiResult;
use super::request::parse;
use super::{batch, channels, history, info, presence, publish, rpc, server_side, users};

/// Runs `method` with `params` (absent = `{}`).
pub async fn dispatch(node: &Node, method: Method, params: Option<&RawValue>) -> ApiResult {
    match method {
        Method::Batch => {
            let result = async { batch::batch(node, parse(params)?).await }.await;
            count(node, method, result)
        }
        other => call(node, other, params).await,
    }
}

/// Counts one call in the `api_requests` metric by method and result code (0 = success).
fn count(node: &Node, method: Method, result: ApiResult) -> ApiResult {
    let code = result.as_ref().map_or_else(|e| e.code(), |_| 0);
    node.metrics().api_request(method.index(), code);
    result
}

/// Runs any method but `batch` (which answers 104 here, so batches do not nest).
pub async fn call(node: &Node, method: Method, params: Option<&RawValue>) -> ApiResult {
    call_counted(node, method, params, &Tally::default()).await
}

/// [`call`], counting the publications it makes in `tally` (the consumers' path: it needs to
/// know which were suppressed as duplicates).
pub async fn call_counted(
    node: &Node,
    method: Method,
    params: Option<&RawValue>,
    tally: &Tally,
) -> ApiResult {
    count(node, method, run(node, method, params, tally).await)
}

/// The publications of one call: made, and suppressed by their idempotency key.
#[derive(Debug, Default)]
pub struct Tally {
    publications: AtomicU32,
    suppressed: AtomicU32,
}

impl Tally {
    /// Counts one publication.
    pub fn publication(&self, suppressed: bool) {
        self.publications.fetch_add(1, Ordering::Relaxed);
        if suppressed {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (publications, suppressed) so far.
    pub fn get(&self) -> (u32, u32) {
        (
            self.publications.load(Ordering::Relaxed),
            self.suppressed.load(Ordering::Relaxed),
        )
    }
}

async fn run(node: &Node, method: Method, params: Option<&RawValue>, tally: &Tally) -> ApiResult {
    match method {
        Method::Publish => publish::publish(node, parse(params)?, tally).await,
        Method::Broadcast => publish::broadcast(node, parse(params)?, tally).await,
        Method::Unsubscribe => users::unsubscribe(node, parse(params)?).await,
        Method::Disconnect => users::disconnect(node, parse(params)?).await,
        Method::Presence => presence::presence(node, parse(params)?).await,
        Method::PresenceStats => presence::presence_stats(node, parse(params)?).await,
        Method::History => history::history(node, parse(params)?).await,
        Method::HistoryRemove => history::history_remove(node, parse(params)?).await,
        Method::Channels => channels::channels(node, parse(params)?).await,
        Method::Info => {
            parse::<serde::de::IgnoredAny>(params)?;
            info::info(node)
        }
        Method::Rpc => rpc::rpc(&parse(params)?),
        Method::Subscribe => server_side::subscribe(node, parse(params)?).await,
        Method::Refresh => server_side::refresh(node, parse(params)?).await,
        Method::Batch => Err(ApiError::MethodNotFound),
    }
}
