//! What a plugin answers, and what it subscribes to, with their msgpack encodings.

use crate::msgpack;
use crate::value::Value;

/// The answer to one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Reaction {
    /// Let the event through unchanged.
    Continue,
    /// Refuse the event: the gateway answers the caller with `status` (400..599; 500 when absent
    /// for sync subscriptions) and `error` as the message.
    Reject { error: String, status: Option<u16> },
    /// Replace the incoming event (sync `event.received` / `function.invoking` only).
    Rewrite(Value),
}

impl Reaction {
    /// Reject with a message and an HTTP status (400..599).
    pub fn reject(error: impl Into<String>, status: u16) -> Reaction {
        Reaction::Reject { error: error.into(), status: Some(status) }
    }

    /// Reject with a message, leaving the status to the gateway.
    pub fn error(error: impl Into<String>) -> Reaction {
        Reaction::Reject { error: error.into(), status: None }
    }

    /// Replace the incoming event by `event` (a map).
    pub fn rewrite(event: Value) -> Reaction {
        Reaction::Rewrite(event)
    }

    /// The msgpack the ABI expects, or `None` for "continue" (returned to the host as 0).
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Reaction::Continue => return None,
            Reaction::Reject { error, status } => {
                msgpack::write_map_header(&mut out, if status.is_some() { 2 } else { 1 });
                msgpack::write_str(&mut out, "error");
                msgpack::write_str(&mut out, error);
                if let Some(status) = status {
                    msgpack::write_str(&mut out, "status");
                    msgpack::write(&mut out, &Value::Int(*status as i64));
                }
            }
            Reaction::Rewrite(event) => {
                msgpack::write_map_header(&mut out, 1);
                msgpack::write_str(&mut out, "event");
                msgpack::write(&mut out, event);
            }
        }
        Some(out)
    }
}

/// One entry of the plugin's subscription list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub event_type: String,
    /// `true`: the gateway waits for the reaction; `false`: it fires and forgets.
    pub sync: bool,
}

impl Subscription {
    pub fn sync(event_type: &str) -> Subscription {
        Subscription { event_type: event_type.to_string(), sync: true }
    }

    pub fn asynchronous(event_type: &str) -> Subscription {
        Subscription { event_type: event_type.to_string(), sync: false }
    }

    /// Encode a list as the msgpack array of `{"eventType", "type"}` maps the ABI specifies.
    pub fn encode_list(subscriptions: &[Subscription]) -> Vec<u8> {
        let items = subscriptions
            .iter()
            .map(|s| {
                Value::Map(vec![
                    (Value::str("eventType"), Value::str(&s.event_type)),
                    (Value::str("type"), Value::str(if s.sync { "sync" } else { "async" })),
                ])
            })
            .collect();
        msgpack::encode(&Value::Array(items))
    }
}
