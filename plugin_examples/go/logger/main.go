// The upstream example plugin: log the type of every event the gateway receives.
package main

import "eventgateway/pdk"

type logger struct{}

func (logger) Subscriptions() []pdk.Subscription {
	return []pdk.Subscription{pdk.Sync("eventgateway.event.received")}
}

func (logger) Init(config pdk.Value) error { return nil }

func (logger) React(event pdk.Event) pdk.Reaction {
	pdk.Info("received event " + event.Incoming().Type())
	return pdk.Continue()
}

func init() { pdk.Register(logger{}) }

// main is never called: the module is a WASI reactor whose exports come from the kit.
func main() {}
