//! `route` mode: the body is the publication data; the channel comes from a template.

use std::collections::BTreeMap;

use pushwire_core::node::PublishParams;
use pushwire_core::Node;
use pushwire_protocol::RawJson;
use serde_json::{Map, Value};

use crate::config::RouteConfig;
use crate::message::Message;
use crate::outcome::{failure, Applied, Effect, Outcome};
use crate::template::{lookup, scalar, Template};

/// A compiled route.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    channel: Template,
    tag_field: Option<String>,
    skip_history: bool,
}

impl Route {
    /// Compiles `config`; the error describes a bad template.
    pub(crate) fn new(config: &RouteConfig) -> Result<Route, String> {
        Ok(Route {
            channel: Template::parse(&config.channel)?,
            tag_field: Some(config.tag_field.clone()).filter(|t| !t.is_empty()),
            skip_history: config.skip_history,
        })
    }

    /// Publishes `msg.body` to the routed channel with idempotency key `msg.id`.
    pub(crate) async fn apply(&self, node: &Node, msg: &Message) -> Applied {
        let body: Option<Map<String, Value>> =
            if self.channel.needs_body() || self.tag_field.is_some() {
                match serde_json::from_slice::<Value>(&msg.body) {
                    Ok(Value::Object(m)) => Some(m),
                    Ok(_) => return Err(Outcome::Poison("body is not a JSON object".into())),
                    Err(e) => return Err(Outcome::Poison(format!("body is not JSON: {e}"))),
                }
            } else {
                None
            };
        let channel = self
            .channel
            .render(msg, body.as_ref())
            .map_err(Outcome::Poison)?;
        let mut tags = BTreeMap::new();
        if let Some(field) = &self.tag_field {
            match body
                .as_ref()
                .and_then(|b| lookup(b, field))
                .and_then(scalar)
            {
                Some(v) => {
                    tags.insert(field.clone(), v);
                }
                None => {
                    return Err(Outcome::Poison(format!(
                        "tag_field {field:?}: body has no string or number field"
                    )))
                }
            }
        }
        let params = PublishParams {
            data: RawJson::from_bytes(msg.body.clone()),
            tags,
            skip_history: self.skip_history,
            idempotency_key: Some(msg.id.clone()),
            ..Default::default()
        };
        match node.publish(&channel, params).await {
            Ok(o) if o.suppressed => Ok(Effect::Duplicate),
            Ok(_) => Ok(Effect::Applied),
            Err(code) => Err(failure(code, &format!("publish to {channel:?}"))),
        }
    }
}
