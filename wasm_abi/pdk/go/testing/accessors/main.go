// Test plugin for the kit's typed event access (tests/pdk/test_go_accessors.py): it answers every
// event.received by rewriting the incoming event's data into a report of what the accessors read.
package main

import "eventgateway/pdk"

type accessors struct{}

func (accessors) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{pdk.Sync("eventgateway.event.received")}
}

func (accessors) Init(pdk.Value) error { return nil }

func (accessors) React(event pdk.Event) pdk.Reaction {
	incoming := event.Incoming()
	data := incoming.Data()
	report := pdk.Map()
	report.Set("systemType", pdk.String(event.Type()))
	report.Set("type", pdk.String(incoming.Type()))
	report.Set("id", pdk.String(incoming.ID()))
	report.Set("source", pdk.String(incoming.Source()))
	report.Set("path", pdk.String(event.Path()))
	report.Set("header", pdk.String(event.Header("x-probe")))
	if n, ok := data.Get("count").AsInt(); ok {
		report.Set("countPlusOne", pdk.Int(n+1))
	}
	if f, ok := data.Get("ratio").AsFloat(); ok {
		report.Set("ratioTimesTwo", pdk.Float64(f*2))
	}
	if b, ok := data.Get("flag").AsBool(); ok {
		report.Set("notFlag", pdk.Bool(!b))
	}
	if blob, ok := data.Get("blob").AsBytes(); ok {
		report.Set("blobLength", pdk.Int(int64(len(blob))))
		report.Set("blob", pdk.Bytes(blob))
	}
	if tags, ok := data.Get("tags").AsArray(); ok {
		report.Set("tagCount", pdk.Int(int64(len(tags))))
	}
	report.Set("lastTag", data.Get("tags").Index(2))
	report.Set("userName", data.Get("user").Get("name"))
	report.Set("firstRole", data.Get("user").Get("roles").Index(0))
	nothing, present := data.Lookup("nothing")
	report.Set("nothingIsNil", pdk.Bool(present && nothing.IsNil()))
	report.Set("missingIsNil", pdk.Bool(data.Get("missing").Get("deeper").IsNil()))
	if u, ok := data.Get("big").AsUint(); ok {
		report.Set("big", pdk.Uint(u))
	}
	if n, ok := data.Get("negative").AsInt(); ok {
		report.Set("negative", pdk.Int(n))
	}
	_, isString := data.Get("count").AsString()
	report.Set("countAsString", pdk.Bool(!isString))
	rewritten := incoming.Raw.Copy()
	rewritten.Set("data", report)
	return pdk.Rewrite(rewritten)
}

func init() { pdk.Register(accessors{}) }

func main() {}
