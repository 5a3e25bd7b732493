//! Test plugin for the kit's capability wrappers (tests/pdk/test_kit_capabilities.py holds the
//! contract): it runs the ops in the incoming event's `data.ops` through `kv`, `metrics` and `http`
//! and rewrites the event's data into `{"results": [...]}`, one `{"code": ...}` map per op.

use eventgateway_pdk::{http, kv, metrics, plugin, CapError, Event, Plugin, Reaction, Subscription, Value};

struct Capabilities;

fn bytes(op: &Value, field: &str) -> Vec<u8> {
    op[field].as_bytes().unwrap_or(&[]).to_vec()
}

fn int(op: &Value, field: &str) -> i64 {
    op[field].as_i64().unwrap_or(0)
}

fn ok(fields: Vec<(&str, Value)>) -> Value {
    let mut result = Value::map();
    result.insert("code", Value::Int(0));
    for (k, v) in fields {
        result.insert(k, v);
    }
    result
}

fn failed(e: CapError) -> Value {
    let mut result = Value::map();
    result.insert("code", Value::Int(e.code() as i64));
    result
}

fn str_map(pairs: &[(String, String)]) -> Value {
    Value::Map(pairs.iter().map(|(k, v)| (Value::str(k), Value::str(v))).collect())
}

fn str_pairs(map: &Value) -> Vec<(String, String)> {
    map.as_map()
        .unwrap_or(&[])
        .iter()
        .map(|(k, v)| (k.as_str().unwrap_or("").to_string(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

fn run(op: &Value) -> Result<Value, CapError> {
    match op["op"].as_str().unwrap_or("") {
        "get" => match kv::get(bytes(op, "key"))? {
            Some(value) => Ok(ok(vec![("value", Value::Bin(value))])),
            None => Err(CapError::NotFound),
        },
        "set" => kv::set(bytes(op, "key"), bytes(op, "value"), int(op, "ttlMs")).map(|_| ok(vec![])),
        "delete" => kv::delete(bytes(op, "key")).map(|d| ok(vec![("deleted", Value::Bool(d))])),
        "incr" => kv::incr(bytes(op, "key"), int(op, "delta"), int(op, "ttlMs")).map(|n| ok(vec![("value", Value::Int(n))])),
        "cas" => {
            let expected = op["expected"].as_bytes();
            kv::cas(bytes(op, "key"), expected, bytes(op, "value"), int(op, "ttlMs"))
                .map(|s| ok(vec![("swapped", Value::Bool(s))]))
        }
        "metric" => {
            let owned = str_pairs(&op["labels"]);
            let labels: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let name = op["name"].as_str().unwrap_or("");
            let value = op["value"].as_f64().unwrap_or(0.0);
            let done = match op["kind"].as_str().unwrap_or("") {
                "counter" => metrics::counter_add(name, &labels, value),
                "gaugeSet" => metrics::gauge_set(name, &labels, value),
                "gaugeAdd" => metrics::gauge_add(name, &labels, value),
                "histogram" => metrics::histogram_observe(name, &labels, value),
                _ => Err(CapError::Invalid),
            };
            done.map(|_| ok(vec![]))
        }
        "http" => {
            let timeout = int(op, "timeoutMs");
            let request = http::Request {
                method: op["method"].as_str().unwrap_or("GET").to_string(),
                url: op["url"].as_str().unwrap_or("").to_string(),
                headers: str_pairs(&op["headers"]),
                body: bytes(op, "body"),
                timeout_ms: if timeout > 0 { Some(timeout as u32) } else { None },
            };
            http::request(&request).map(|r| {
                ok(vec![
                    ("status", Value::Int(r.status as i64)),
                    ("headers", str_map(&r.headers)),
                    ("body", Value::Bin(r.body)),
                ])
            })
        }
        _ => Err(CapError::Invalid),
    }
}

impl Plugin for Capabilities {
    fn subscriptions() -> Vec<Subscription> {
        vec![Subscription::sync("eventgateway.event.received")]
    }

    fn init(_config: &Value) -> Result<Self, String> {
        Ok(Capabilities)
    }

    fn react(&mut self, event: &Event) -> Reaction {
        let incoming = event.incoming();
        let ops = match incoming.data()["ops"].as_array() {
            Some(ops) => ops,
            None => return Reaction::Continue,
        };
        let results: Vec<Value> = ops.iter().map(|op| run(op).unwrap_or_else(failed)).collect();
        let mut data = Value::map();
        data.insert("results", Value::Array(results));
        let mut rewritten = incoming.raw().clone();
        rewritten.insert("data", data);
        Reaction::rewrite(rewritten)
    }
}

plugin!(Capabilities);
