//! Add `traceId`, `functionId` and configured fields to an event's data before a function gets it,
//! and count invocation outcomes (asynchronously) in the instance.

use eventgateway_pdk::{log, plugin, Event, Plugin, Reaction, Subscription, Value};

struct Enricher {
    /// Config `fields`, in config order; they override what the event carries.
    fields: Vec<(String, Value)>,
    ok: u64,
    failed: u64,
}

impl Enricher {
    fn enrich(&self, event: &Event) -> Reaction {
        let incoming = event.incoming();
        if !incoming.data().is_map() {
            return Reaction::Continue;
        }
        let mut data = incoming.data().clone();
        data.insert("traceId", incoming.id().map_or(Value::Nil, Value::str));
        data.insert("functionId", event.function_id().map_or(Value::Nil, Value::str));
        for (key, value) in &self.fields {
            data.insert(key, value.clone());
        }
        let mut rewritten = incoming.raw().clone();
        rewritten.insert("data", data);
        Reaction::rewrite(rewritten)
    }
}

impl Plugin for Enricher {
    fn subscriptions() -> Vec<Subscription> {
        vec![
            Subscription::sync("eventgateway.function.invoking"),
            Subscription::asynchronous("eventgateway.function.invoked"),
            Subscription::asynchronous("eventgateway.function.invocationFailed"),
        ]
    }

    fn init(config: &Value) -> Result<Self, String> {
        let mut enricher = Enricher { fields: Vec::new(), ok: 0, failed: 0 };
        if config.is_nil() {
            return Ok(enricher);
        }
        if !config.is_map() {
            return Err(format!("enricher: invalid config: expected a map, got {}", config.type_name()));
        }
        match config.get("fields") {
            None | Some(Value::Nil) => {}
            Some(Value::Map(entries)) => {
                for (key, value) in entries {
                    match (key.as_str(), value.as_str()) {
                        (Some(k), Some(_)) => enricher.fields.push((k.to_string(), value.clone())),
                        (None, _) => return Err("enricher: invalid config: fields keys must be strings".to_string()),
                        (Some(k), None) => {
                            return Err(format!(
                                "enricher: invalid config: fields.{} must be a string, got {}",
                                k,
                                value.type_name()
                            ))
                        }
                    }
                }
            }
            Some(other) => {
                return Err(format!("enricher: invalid config: fields must be a map, got {}", other.type_name()))
            }
        }
        Ok(enricher)
    }

    fn react(&mut self, event: &Event) -> Reaction {
        let function_id = event.function_id().unwrap_or("");
        match event.system_type() {
            "eventgateway.function.invoking" => return self.enrich(event),
            "eventgateway.function.invoked" => {
                self.ok += 1;
                log::info(&format!("function {} invoked: {} ok, {} failed", function_id, self.ok, self.failed));
            }
            "eventgateway.function.invocationFailed" => {
                self.failed += 1;
                log::warn(&format!(
                    "function {} failed: {}; {} ok, {} failed",
                    function_id,
                    event.error().unwrap_or(""),
                    self.ok,
                    self.failed
                ));
            }
            _ => {}
        }
        Reaction::Continue
    }
}

plugin!(Enricher);
