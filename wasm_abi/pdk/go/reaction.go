package pdk

// Reaction is the answer to one event; build it with Continue, Reject, Fail or Rewrite.
type Reaction struct {
	kind   reactionKind
	err    string
	status int
	event  Value
}

type reactionKind uint8

const (
	continueKind reactionKind = iota
	rejectKind
	rewriteKind
)

// Continue lets the event through unchanged.
func Continue() Reaction { return Reaction{} }

// Reject refuses the event with a message and an HTTP status (400..599).
func Reject(message string, status int) Reaction {
	return Reaction{kind: rejectKind, err: message, status: status}
}

// Fail refuses the event with a message, leaving the status to the gateway.
func Fail(message string) Reaction { return Reaction{kind: rejectKind, err: message} }

// Rewrite replaces the incoming event (sync event.received / function.invoking only).
func Rewrite(event Value) Reaction { return Reaction{kind: rewriteKind, event: event} }

// Encode gives the msgpack the ABI expects, or nil for "continue" (returned to the host as 0).
func (r Reaction) Encode() []byte {
	switch r.kind {
	case rejectKind:
		n := 1
		if r.status != 0 {
			n = 2
		}
		b := appendString(appendString(appendMapHeader(nil, n), "error"), r.err)
		if r.status != 0 {
			b = appendInt(appendString(b, "status"), int64(r.status))
		}
		return b
	case rewriteKind:
		return AppendValue(appendString(appendMapHeader(nil, 1), "event"), r.event)
	}
	return nil
}

// Subscription is one entry of the plugin's subscription list.
type Subscription struct {
	EventType string
	// Sync: the gateway waits for the reaction; otherwise it fires and forgets.
	Sync bool
}

// Sync subscribes to eventType and makes the gateway wait for the reaction.
func Sync(eventType string) Subscription { return Subscription{eventType, true} }

// Async subscribes to eventType without the gateway waiting.
func Async(eventType string) Subscription { return Subscription{eventType, false} }

func encodeSubscriptions(subs []Subscription) []byte {
	items := make([]Value, len(subs))
	for i, s := range subs {
		mode := "async"
		if s.Sync {
			mode = "sync"
		}
		items[i] = Map(Entry{String("eventType"), String(s.EventType)}, Entry{String("type"), String(mode)})
	}
	return Encode(Array(items...))
}
