//! The plugin's own metrics (capability `metrics`, ABI.md section 7.1), exported on the gateway's
//! `/metrics` as `eventgateway_plugin_custom_<name>{plugin="<plugin>", <labels>}`.
//!
//! Names match `[a-zA-Z_][a-zA-Z0-9_]*` (at most 64 bytes); at most 8 labels, values at most 128 bytes;
//! a name keeps the kind and label names it was first used with. The plugin's series are capped
//! (`Err(CapError::Quota)` past the cap).

use crate::capability::{check, raw, CapError};
use crate::msgpack;

#[link(wasm_import_module = "eventgateway")]
extern "C" {
    fn metric(kind: i32, name: i32, name_len: i32, labels: i32, labels_len: i32, value: f64) -> i32;
}

/// The `kind` argument of the `metric` import.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Add a finite value `>= 0` to a counter.
    CounterAdd = 0,
    /// Set a gauge.
    GaugeSet = 1,
    /// Add to a gauge (may be negative).
    GaugeAdd = 2,
    /// Observe a finite value in a histogram.
    HistogramObserve = 3,
}

/// One `metric` call; the wrappers below name the kinds.
pub fn record(kind: Kind, name: &str, labels: &[(&str, &str)], value: f64) -> Result<(), CapError> {
    let mut encoded = Vec::new();
    if !labels.is_empty() {
        msgpack::write_map_header(&mut encoded, labels.len());
        for (k, v) in labels {
            msgpack::write_str(&mut encoded, k);
            msgpack::write_str(&mut encoded, v);
        }
    }
    let (n, n_len) = raw(name.as_bytes());
    let (l, l_len) = raw(&encoded);
    // Safety: the host only reads both buffers during the call.
    check(unsafe { metric(kind as i32, n, n_len, l, l_len, value) }).map(|_| ())
}

/// `metrics::counter_add("requests", &[("route", "/a")], 1.0)`.
pub fn counter_add(name: &str, labels: &[(&str, &str)], value: f64) -> Result<(), CapError> {
    record(Kind::CounterAdd, name, labels, value)
}

pub fn gauge_set(name: &str, labels: &[(&str, &str)], value: f64) -> Result<(), CapError> {
    record(Kind::GaugeSet, name, labels, value)
}

pub fn gauge_add(name: &str, labels: &[(&str, &str)], value: f64) -> Result<(), CapError> {
    record(Kind::GaugeAdd, name, labels, value)
}

pub fn histogram_observe(name: &str, labels: &[(&str, &str)], value: f64) -> Result<(), CapError> {
    record(Kind::HistogramObserve, name, labels, value)
}
