// Package pdk is the guest kit for event gateway plugins written in Go (ABI eventgateway_abi_v1).
//
// A plugin implements Plugin and calls Register from an init function of package main; the kit
// exports everything the host calls (eventgateway_abi_v1, alloc, subscriptions, init, react).
// Build with `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm`; the result is a
// WASI reactor (it exports _initialize), which the gateway runs without any WASI capability.
//
// Capabilities an operator grants (ABI.md section 7.1) have typed wrappers: KvGet, KvSet, KvDelete,
// KvIncr, KvCAS, KvCASAbsent (kv.go), HTTPRequest (http.go), CounterAdd, GaugeSet, GaugeAdd,
// HistogramObserve (metrics.go). Their errors are CapError values, the ABI's codes. Go's linker keeps
// only the imports of wrappers a plugin calls, so a plugin needs a grant only for what it uses.
package pdk

import "unsafe"

// Plugin is what a plugin implements. The registered value lives in the instance, so its fields
// keep state across events (until the host recreates the instance, e.g. after a fault).
type Plugin interface {
	// Subscriptions lists the system events to receive.
	Subscriptions() []Subscription
	// Init reads the config map (the nil Value when the gateway has none); an error fails the load.
	Init(config Value) error
	// React answers one system event.
	React(event Event) Reaction
}

var (
	plugin      Plugin
	initialized bool
	// pinned holds every buffer handed out by alloc until react/init takes it back: Go's GC does
	// not move objects, so a live reference is all the host's pointer needs.
	pinned = map[int32][]byte{}
	// output keeps the last answer alive until the next call, as the ABI requires.
	output []byte
)

// Register installs the plugin; call it from an init function of package main.
func Register(p Plugin) { plugin = p }

//go:wasmexport eventgateway_abi_v1
func abiVersionMarker() {}

//go:wasmexport alloc
func alloc(size int32) int32 {
	if size < 0 {
		return 0
	}
	buf := make([]byte, size, size+1) // capacity >= 1: even an empty buffer has a real address
	ptr := int32(uintptr(unsafe.Pointer(unsafe.SliceData(buf[:cap(buf)]))))
	pinned[ptr] = buf
	return ptr
}

// takeInput unpins a buffer from alloc; the plugin owns it from the call on.
func takeInput(ptr, length int32) ([]byte, bool) {
	buf, ok := pinned[ptr]
	delete(pinned, ptr)
	if !ok || length < 0 || int(length) > len(buf) {
		return nil, false
	}
	return buf[:length], true
}

func handOver(b []byte) int64 {
	if b == nil {
		return 0
	}
	output = b
	ptr := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(output))))
	return int64(uint64(ptr)<<32 | uint64(uint32(len(output))))
}

func mustHavePlugin() {
	if plugin == nil {
		panic("eventgateway pdk: no plugin registered (call pdk.Register from an init function of package main)")
	}
}

//go:wasmexport subscriptions
func subscriptions() int64 {
	mustHavePlugin()
	return handOver(encodeSubscriptions(plugin.Subscriptions()))
}

//go:wasmexport init
func initPlugin(ptr, length int32) int64 {
	mustHavePlugin()
	input, ok := takeInput(ptr, length)
	if !ok {
		return handOver(Fail("init: the config buffer was not obtained from alloc").Encode())
	}
	config, err := Decode(input)
	if err != nil {
		return handOver(Fail("init: config is not msgpack: " + err.Error()).Encode())
	}
	if err := plugin.Init(config); err != nil {
		return handOver(Fail(err.Error()).Encode())
	}
	initialized = true
	return 0
}

//go:wasmexport react
func react(ptr, length int32) int64 {
	mustHavePlugin()
	input, ok := takeInput(ptr, length)
	if !initialized {
		// The host skips init when the plugin has no config: start from an empty one.
		if err := plugin.Init(Nil()); err != nil {
			return handOver(Fail(err.Error()).Encode())
		}
		initialized = true
	}
	if !ok {
		return handOver(Fail("react: the event buffer was not obtained from alloc").Encode())
	}
	raw, err := Decode(input)
	if err != nil {
		return handOver(Fail("react: event is not msgpack: " + err.Error()).Encode())
	}
	return handOver(plugin.React(Event{raw}).Encode())
}

// Roundtrip decodes a buffer from alloc and answers its re-encoding (0 and an error log line for
// bad input). It exists for the kit's msgpack tests, which export it from a test module.
func Roundtrip(ptr, length int32) int64 {
	input, ok := takeInput(ptr, length)
	if !ok {
		Error("roundtrip: the buffer was not obtained from alloc")
		return 0
	}
	v, err := Decode(input)
	if err != nil {
		Error(err.Error())
		return 0
	}
	return handOver(Encode(v))
}
