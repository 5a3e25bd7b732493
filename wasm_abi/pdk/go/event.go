package pdk

// Event is the system event handed to React (eventgateway.event.received,
// eventgateway.function.invoking, ...). Its accessors answer "" / the nil Value when a field is
// absent, so a plugin never has to check each level.
type Event struct {
	Raw Value
}

// Type is the system event's own type, e.g. "eventgateway.function.invoked".
func (e Event) Type() string { return e.Raw.GetString("type") }

// Data is the system event's data map (event, path, headers, functionId, ...).
func (e Event) Data() Value { return e.Raw.Get("data") }

// Incoming is the user's event the system event is about (data.event).
func (e Event) Incoming() CloudEvent { return CloudEvent{e.Data().Get("event")} }

// FunctionID is data.functionId of function.* events.
func (e Event) FunctionID() string { return e.Data().GetString("functionId") }

// Space is data.space of function.* events.
func (e Event) Space() string { return e.Data().GetString("space") }

// Error is data.error of function.invocationFailed.
func (e Event) Error() string { return e.Data().GetString("error") }

// Result is data.result of function.invoked.
func (e Event) Result() Value { return e.Data().Get("result") }

// Path is data.path of event.received.
func (e Event) Path() string { return e.Data().GetString("path") }

// Header is one request header of event.received.
func (e Event) Header(name string) string { return e.Data().Get("headers").GetString(name) }

// CloudEvent reads a CloudEvent in either spec version: the 1.0 attribute names (type, id, ...)
// first, then the 0.1 ones (eventType, eventID, ...).
type CloudEvent struct {
	Raw Value
}

func (c CloudEvent) either(v1, v01 string) string {
	if s, ok := c.Raw.Get(v1).AsString(); ok {
		return s
	}
	return c.Raw.GetString(v01)
}

// Type is `type` (1.0) or `eventType` (0.1).
func (c CloudEvent) Type() string { return c.either("type", "eventType") }

// ID is `id` (1.0) or `eventID` (0.1).
func (c CloudEvent) ID() string { return c.either("id", "eventID") }

func (c CloudEvent) Source() string { return c.Raw.GetString("source") }

// Time is `time` (1.0) or `eventTime` (0.1).
func (c CloudEvent) Time() string { return c.either("time", "eventTime") }

// ContentType is `datacontenttype` (1.0) or `contentType` (0.1).
func (c CloudEvent) ContentType() string { return c.either("datacontenttype", "contentType") }

// Data is the payload: a map for JSON objects, but any value is possible.
func (c CloudEvent) Data() Value { return c.Raw.Get("data") }

// Get reads any other attribute (extensions included).
func (c CloudEvent) Get(key string) Value { return c.Raw.Get(key) }
