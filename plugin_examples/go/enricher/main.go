// Add traceId, functionId and configured fields to an event's data before a function gets it,
// and count invocation outcomes (asynchronously) in the instance.
package main

import (
	"errors"
	"strconv"

	"eventgateway/pdk"
)

type enricher struct {
	// fields from the config, in config order; they override what the event carries.
	fields     []pdk.Entry
	ok, failed int
}

func invalid(what string) error { return errors.New("enricher: invalid config: " + what) }

func (*enricher) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{
		pdk.Sync("eventgateway.function.invoking"),
		pdk.Async("eventgateway.function.invoked"),
		pdk.Async("eventgateway.function.invocationFailed"),
	}
}

func (e *enricher) Init(config pdk.Value) error {
	e.fields = nil
	if config.IsNil() {
		return nil
	}
	if !config.IsMap() {
		return invalid("expected a map, got " + config.TypeName())
	}
	fields := config.Get("fields")
	if fields.IsNil() {
		return nil
	}
	entries, ok := fields.Entries()
	if !ok {
		return invalid("fields must be a map, got " + fields.TypeName())
	}
	for _, entry := range entries {
		key, ok := entry.Key.AsString()
		if !ok {
			return invalid("fields keys must be strings")
		}
		if _, ok := entry.Value.AsString(); !ok {
			return invalid("fields." + key + " must be a string, got " + entry.Value.TypeName())
		}
		e.fields = append(e.fields, entry)
	}
	return nil
}

func (e *enricher) enrich(event pdk.Event) pdk.Reaction {
	incoming := event.Incoming()
	if !incoming.Data().IsMap() {
		return pdk.Continue()
	}
	data := incoming.Data().Copy()
	data.Set("traceId", incoming.Raw.Get("id"))
	if incoming.Raw.Get("id").IsNil() {
		data.Set("traceId", incoming.Raw.Get("eventID"))
	}
	data.Set("functionId", event.Data().Get("functionId"))
	for _, field := range e.fields {
		key, _ := field.Key.AsString()
		data.Set(key, field.Value)
	}
	rewritten := incoming.Raw.Copy()
	rewritten.Set("data", data)
	return pdk.Rewrite(rewritten)
}

func (e *enricher) React(event pdk.Event) pdk.Reaction {
	counts := func() string { return strconv.Itoa(e.ok) + " ok, " + strconv.Itoa(e.failed) + " failed" }
	switch event.Type() {
	case "eventgateway.function.invoking":
		return e.enrich(event)
	case "eventgateway.function.invoked":
		e.ok++
		pdk.Info("function " + event.FunctionID() + " invoked: " + counts())
	case "eventgateway.function.invocationFailed":
		e.failed++
		pdk.Warn("function " + event.FunctionID() + " failed: " + event.Error() + "; " + counts())
	}
	return pdk.Continue()
}

func init() { pdk.Register(&enricher{}) }

func main() {}
