//! Typed views of the system event handed to `react` and of the CloudEvent it carries, so a
//! plugin asks for `event.incoming().event_type()` instead of walking maps by hand.

use crate::value::{Value, NIL};

/// The system event (`eventgateway.event.received`, `eventgateway.function.invoking`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    raw: Value,
}

impl Event {
    pub fn new(raw: Value) -> Event {
        Event { raw }
    }

    /// The whole decoded system event.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// The system event's own type, e.g. `eventgateway.function.invoked`.
    pub fn system_type(&self) -> &str {
        self.raw["type"].as_str().unwrap_or("")
    }

    /// The system event's `data` map (`event`, `path`, `headers`, `functionId`, ...).
    pub fn data(&self) -> &Value {
        &self.raw["data"]
    }

    /// The user's event the system event is about (`data.event`).
    pub fn incoming(&self) -> CloudEvent<'_> {
        CloudEvent { raw: &self.raw["data"]["event"] }
    }

    /// `data.functionId` of function.* events.
    pub fn function_id(&self) -> Option<&str> {
        self.data()["functionId"].as_str()
    }

    /// `data.space` of function.* events.
    pub fn space(&self) -> Option<&str> {
        self.data()["space"].as_str()
    }

    /// `data.error` of function.invocationFailed.
    pub fn error(&self) -> Option<&str> {
        self.data()["error"].as_str()
    }

    /// `data.result` of function.invoked (nil elsewhere).
    pub fn result(&self) -> &Value {
        &self.data()["result"]
    }

    /// `data.path` of event.received.
    pub fn path(&self) -> Option<&str> {
        self.data()["path"].as_str()
    }

    /// One request header of event.received (as sent by the gateway).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.data()["headers"][name].as_str()
    }
}

/// A CloudEvent in either spec version: 1.0 names (`type`, `id`, ...) are read first, then the
/// 0.1 names (`eventType`, `eventID`, ...), so plugins work with both.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CloudEvent<'a> {
    raw: &'a Value,
}

impl<'a> CloudEvent<'a> {
    pub fn raw(&self) -> &'a Value {
        self.raw
    }

    fn either(&self, v1: &str, v01: &str) -> Option<&'a str> {
        self.raw[v1].as_str().or_else(|| self.raw[v01].as_str())
    }

    /// `type` (1.0) or `eventType` (0.1); empty when neither is a string.
    pub fn event_type(&self) -> &'a str {
        self.either("type", "eventType").unwrap_or("")
    }

    /// `id` (1.0) or `eventID` (0.1).
    pub fn id(&self) -> Option<&'a str> {
        self.either("id", "eventID")
    }

    pub fn source(&self) -> Option<&'a str> {
        self.raw["source"].as_str()
    }

    /// `time` (1.0) or `eventTime` (0.1).
    pub fn time(&self) -> Option<&'a str> {
        self.either("time", "eventTime")
    }

    /// `datacontenttype` (1.0) or `contentType` (0.1).
    pub fn content_type(&self) -> Option<&'a str> {
        self.either("datacontenttype", "contentType")
    }

    /// The payload: a map for JSON objects, but any value is possible (string, bytes, nil...).
    pub fn data(&self) -> &'a Value {
        &self.raw["data"]
    }

    /// Any other attribute (extensions included); nil when absent.
    pub fn get(&self, key: &str) -> &'a Value {
        self.raw.get(key).unwrap_or(&NIL)
    }
}
