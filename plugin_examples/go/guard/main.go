// Reject incoming events by type or by a data field's value, per the rules of the init config:
// {"denyTypes": [str...], "denyData": {field: str}, "status": int} (all optional).
package main

import (
	"errors"
	"strconv"

	"eventgateway/pdk"
)

type rule struct{ field, value string }

type guard struct {
	denyTypes []string
	// denyData keeps config order: the first match names the field in the message.
	denyData []rule
	status   int
}

func invalid(what string) error { return errors.New("guard: invalid config: " + what) }

func (*guard) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{pdk.Sync("eventgateway.event.received")}
}

func (g *guard) Init(config pdk.Value) error {
	*g = guard{status: 403}
	if config.IsNil() {
		return nil
	}
	if !config.IsMap() {
		return invalid("expected a map, got " + config.TypeName())
	}
	if types := config.Get("denyTypes"); !types.IsNil() {
		items, ok := types.AsArray()
		if !ok {
			return invalid("denyTypes must be an array, got " + types.TypeName())
		}
		for _, item := range items {
			t, ok := item.AsString()
			if !ok {
				return invalid("denyTypes must hold strings, got " + item.TypeName())
			}
			g.denyTypes = append(g.denyTypes, t)
		}
	}
	if data := config.Get("denyData"); !data.IsNil() {
		entries, ok := data.Entries()
		if !ok {
			return invalid("denyData must be a map, got " + data.TypeName())
		}
		for _, e := range entries {
			field, ok := e.Key.AsString()
			if !ok {
				return invalid("denyData keys must be strings")
			}
			value, ok := e.Value.AsString()
			if !ok {
				return invalid("denyData." + field + " must be a string, got " + e.Value.TypeName())
			}
			g.denyData = append(g.denyData, rule{field, value})
		}
	}
	if status := config.Get("status"); !status.IsNil() {
		s, ok := status.AsInt()
		if !ok {
			return invalid("status must be an int, got " + status.TypeName())
		}
		if s < 400 || s > 599 {
			return invalid("status must be within 400..599, got " + strconv.FormatInt(s, 10))
		}
		g.status = int(s)
	}
	return nil
}

func (g *guard) React(event pdk.Event) pdk.Reaction {
	incoming := event.Incoming()
	eventType := incoming.Type()
	for _, denied := range g.denyTypes {
		if denied == eventType {
			return pdk.Reject("guard: event type "+eventType+" is denied", g.status)
		}
	}
	if data := incoming.Data(); data.IsMap() {
		for _, r := range g.denyData {
			if value, ok := data.Get(r.field).AsString(); ok && value == r.value {
				return pdk.Reject("guard: data field "+r.field+" is denied", g.status)
			}
		}
	}
	return pdk.Continue()
}

func init() { pdk.Register(&guard{status: 403}) }

func main() {}
