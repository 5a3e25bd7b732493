//! The upstream example plugin: log the type of every event the gateway receives.

use eventgateway_pdk::{log, plugin, Event, Plugin, Reaction, Subscription, Value};

struct Logger;

impl Plugin for Logger {
    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::sync("eventgateway.event.received")]
    }

    fn init(_config: &Value) -> Result<Self, String> {
        Ok(Logger)
    }

    fn react(&mut self, event: &Event) -> Reaction {
        log::info(&format!("received event {}", event.incoming().event_type()));
        Reaction::Continue
    }
}

plugin!(Logger);
