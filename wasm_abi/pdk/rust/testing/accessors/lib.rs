//! Test plugin for the kit's typed event access (tests/pdk/test_rust_accessors.py): it answers every
//! event.received by rewriting the incoming event's data into a report of what the accessors read.

use eventgateway_pdk::{plugin, Event, Plugin, Reaction, Subscription, Value};

struct Accessors;

impl Plugin for Accessors {
    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::sync("eventgateway.event.received")]
    }

    fn init(_config: &Value) -> Result<Self, String> {
        Ok(Accessors)
    }

    fn react(&mut self, event: &Event) -> Reaction {
        let incoming = event.incoming();
        let data = incoming.data();
        let mut report = Value::map();
        report.insert("systemType", Value::str(event.system_type()));
        report.insert("type", Value::str(incoming.event_type()));
        report.insert("id", incoming.id().map_or(Value::Nil, Value::str));
        report.insert("source", incoming.source().map_or(Value::Nil, Value::str));
        report.insert("path", event.path().map_or(Value::Nil, Value::str));
        report.insert("header", event.header("x-probe").map_or(Value::Nil, Value::str));
        report.insert("countPlusOne", data["count"].as_i64().map_or(Value::Nil, |n| Value::Int(n + 1)));
        report.insert("ratioTimesTwo", data["ratio"].as_f64().map_or(Value::Nil, |f| Value::F64(f * 2.0)));
        report.insert("notFlag", data["flag"].as_bool().map_or(Value::Nil, |b| Value::Bool(!b)));
        report.insert("blobLength", data["blob"].as_bytes().map_or(Value::Nil, |b| Value::Int(b.len() as i64)));
        report.insert("blob", data["blob"].as_bytes().map_or(Value::Nil, |b| Value::Bin(b.to_vec())));
        report.insert("tagCount", data["tags"].as_array().map_or(Value::Nil, |a| Value::Int(a.len() as i64)));
        report.insert("lastTag", data["tags"][2].clone());
        report.insert("userName", data["user"]["name"].clone());
        report.insert("firstRole", data["user"]["roles"][0].clone());
        report.insert("nothingIsNil", Value::Bool(data.get("nothing").map_or(false, Value::is_nil)));
        report.insert("missingIsNil", Value::Bool(data["missing"]["deeper"].is_nil()));
        report.insert("big", data["big"].as_u64().map_or(Value::Nil, Value::UInt));
        report.insert("negative", data["negative"].as_i64().map_or(Value::Nil, Value::Int));
        report.insert("countAsString", Value::Bool(data["count"].as_str().is_none()));
        let mut rewritten = incoming.raw().clone();
        rewritten.insert("data", report);
        Reaction::rewrite(rewritten)
    }
}

plugin!(Accessors);
