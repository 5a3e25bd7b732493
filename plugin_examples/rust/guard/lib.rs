//! Reject incoming events by type or by a data field's value, per the rules of the `init` config:
//! `{"denyTypes": [str...], "denyData": {field: str}, "status": int}` (all optional).

use eventgateway_pdk::{plugin, Event, Plugin, Reaction, Subscription, Value};

struct Guard {
    deny_types: Vec<String>,
    /// (field, value) pairs in config order: the first match names the field in the message.
    deny_data: Vec<(String, String)>,
    status: u16,
}

fn invalid(what: &str) -> String {
    format!("guard: invalid config: {}", what)
}

impl Plugin for Guard {
    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::sync("eventgateway.event.received")]
    }

    fn init(config: &Value) -> Result<Self, String> {
        let mut guard = Guard { deny_types: Vec::new(), deny_data: Vec::new(), status: 403 };
        if config.is_nil() {
            return Ok(guard);
        }
        if !config.is_map() {
            return Err(invalid(&format!("expected a map, got {}", config.type_name())));
        }
        match config.get("denyTypes") {
            None | Some(Value::Nil) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    match item.as_str() {
                        Some(t) => guard.deny_types.push(t.to_string()),
                        None => return Err(invalid(&format!("denyTypes must hold strings, got {}", item.type_name()))),
                    }
                }
            }
            Some(other) => return Err(invalid(&format!("denyTypes must be an array, got {}", other.type_name()))),
        }
        match config.get("denyData") {
            None | Some(Value::Nil) => {}
            Some(Value::Map(entries)) => {
                for (field, value) in entries {
                    match (field.as_str(), value.as_str()) {
                        (Some(f), Some(v)) => guard.deny_data.push((f.to_string(), v.to_string())),
                        (None, _) => return Err(invalid("denyData keys must be strings")),
                        (Some(f), None) => {
                            return Err(invalid(&format!("denyData.{} must be a string, got {}", f, value.type_name())))
                        }
                    }
                }
            }
            Some(other) => return Err(invalid(&format!("denyData must be a map, got {}", other.type_name()))),
        }
        match config.get("status") {
            None | Some(Value::Nil) => {}
            Some(status) => match status.as_i64() {
                Some(s) if (400..=599).contains(&s) => guard.status = s as u16,
                Some(s) => return Err(invalid(&format!("status must be within 400..599, got {}", s))),
                None => return Err(invalid(&format!("status must be an int, got {}", status.type_name()))),
            },
        }
        Ok(guard)
    }

    fn react(&mut self, event: &Event) -> Reaction {
        let incoming = event.incoming();
        let event_type = incoming.event_type();
        if self.deny_types.iter().any(|t| t == event_type) {
            return Reaction::reject(format!("guard: event type {} is denied", event_type), self.status);
        }
        let data = incoming.data();
        if data.is_map() {
            for (field, value) in &self.deny_data {
                if data[field.as_str()].as_str() == Some(value.as_str()) {
                    return Reaction::reject(format!("guard: data field {} is denied", field), self.status);
                }
            }
        }
        Reaction::Continue
    }
}

plugin!(Guard);
