// Test plugin for the kit's capability wrappers (tests/pdk/test_kit_capabilities.py holds the
// contract): it runs the ops in the incoming event's data.ops through the kv, metric and http
// wrappers and rewrites the event's data into {"results": [...]}, one {"code": ...} map per op.
package main

import (
	"errors"

	"eventgateway/pdk"
)

type capabilities struct{}

func (capabilities) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{pdk.Sync("eventgateway.event.received")}
}

func (capabilities) Init(pdk.Value) error { return nil }

func bytesOf(op pdk.Value, field string) []byte {
	b, _ := op.Get(field).AsBytes()
	return b
}

func intOf(op pdk.Value, field string) int64 {
	n, _ := op.Get(field).AsInt()
	return n
}

func strMap(v pdk.Value) map[string]string {
	out := map[string]string{}
	entries, _ := v.Entries()
	for _, e := range entries {
		k, _ := e.Key.AsString()
		out[k], _ = e.Value.AsString()
	}
	return out
}

func ok(fields ...pdk.Entry) pdk.Value {
	return pdk.Map(append([]pdk.Entry{{Key: pdk.String("code"), Value: pdk.Int(0)}}, fields...)...)
}

func field(name string, v pdk.Value) pdk.Entry { return pdk.Entry{Key: pdk.String(name), Value: v} }

func run(op pdk.Value) (pdk.Value, error) {
	key := string(bytesOf(op, "key"))
	switch op.GetString("op") {
	case "get":
		value, err := pdk.KvGet(key)
		if err != nil {
			return pdk.Value{}, err
		}
		return ok(field("value", pdk.Bytes(value))), nil
	case "set":
		return ok(), pdk.KvSet(key, bytesOf(op, "value"), intOf(op, "ttlMs"))
	case "delete":
		deleted, err := pdk.KvDelete(key)
		return ok(field("deleted", pdk.Bool(deleted))), err
	case "incr":
		n, err := pdk.KvIncr(key, intOf(op, "delta"), intOf(op, "ttlMs"))
		return ok(field("value", pdk.Int(n))), err
	case "cas":
		var swapped bool
		var err error
		if op.Get("expected").IsNil() {
			swapped, err = pdk.KvCASAbsent(key, bytesOf(op, "value"), intOf(op, "ttlMs"))
		} else {
			swapped, err = pdk.KvCAS(key, bytesOf(op, "expected"), bytesOf(op, "value"), intOf(op, "ttlMs"))
		}
		return ok(field("swapped", pdk.Bool(swapped))), err
	case "metric":
		value, _ := op.Get("value").AsFloat()
		labels := strMap(op.Get("labels"))
		name := op.GetString("name")
		var err error
		switch op.GetString("kind") {
		case "counter":
			err = pdk.CounterAdd(name, labels, value)
		case "gaugeSet":
			err = pdk.GaugeSet(name, labels, value)
		case "gaugeAdd":
			err = pdk.GaugeAdd(name, labels, value)
		case "histogram":
			err = pdk.HistogramObserve(name, labels, value)
		default:
			err = pdk.ErrInvalid
		}
		return ok(), err
	case "http":
		method := op.GetString("method")
		if method == "" {
			method = "GET"
		}
		response, err := pdk.HTTPRequest(pdk.Request{
			Method:    method,
			URL:       op.GetString("url"),
			Headers:   strMap(op.Get("headers")),
			Body:      bytesOf(op, "body"),
			TimeoutMs: intOf(op, "timeoutMs"),
		})
		if err != nil {
			return pdk.Value{}, err
		}
		headers := pdk.Map()
		for k, v := range response.Headers {
			headers.Set(k, pdk.String(v))
		}
		return ok(field("status", pdk.Int(int64(response.Status))), field("headers", headers),
			field("body", pdk.Bytes(response.Body))), nil
	}
	return pdk.Value{}, pdk.ErrInvalid
}

func (capabilities) React(event pdk.Event) pdk.Reaction {
	incoming := event.Incoming()
	ops, isArray := incoming.Data().Get("ops").AsArray()
	if !isArray {
		return pdk.Continue()
	}
	results := make([]pdk.Value, 0, len(ops))
	for _, op := range ops {
		result, err := run(op)
		if err != nil {
			var capErr pdk.CapError
			if !errors.As(err, &capErr) {
				capErr = pdk.ErrInvalid
			}
			result = pdk.Map(field("code", pdk.Int(int64(capErr.Code()))))
		}
		results = append(results, result)
	}
	rewritten := incoming.Raw.Copy()
	rewritten.Set("data", pdk.Map(field("results", pdk.Array(results...))))
	return pdk.Rewrite(rewritten)
}

func init() { pdk.Register(capabilities{}) }

func main() {}
