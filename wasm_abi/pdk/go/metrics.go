package pdk

import "unsafe"

// The plugin's own metrics (capability metrics, ABI.md section 7.1), exported on the gateway's
// /metrics as eventgateway_plugin_custom_<name>{plugin="<plugin>", <labels>}. Names match
// [a-zA-Z_][a-zA-Z0-9_]* (at most 64 bytes); at most 8 labels, values at most 128 bytes; a name keeps
// the kind and label names it was first used with. Past the plugin's series cap: ErrQuota.

//go:wasmimport eventgateway metric
func hostMetric(kind int32, name unsafe.Pointer, nameLen int32, labels unsafe.Pointer, labelsLen int32, value float64) int32

// MetricKind is the kind argument of the metric import.
type MetricKind int32

const (
	MetricCounterAdd       MetricKind = 0 // add a finite value >= 0 to a counter
	MetricGaugeSet         MetricKind = 1 // set a gauge
	MetricGaugeAdd         MetricKind = 2 // add to a gauge (may be negative)
	MetricHistogramObserve MetricKind = 3 // observe a finite value in a histogram
)

// Metric makes one metric call; labels may be nil.
func Metric(kind MetricKind, name string, labels map[string]string, value float64) error {
	var encoded []byte
	if len(labels) > 0 {
		encoded = appendMapHeader(make([]byte, 0, 64), len(labels))
		for k, v := range labels {
			encoded = appendString(appendString(encoded, k), v)
		}
	}
	_, err := check(hostMetric(int32(kind), stringPtr(name), int32(len(name)), bytesPtr(encoded), int32(len(encoded)), value))
	return err
}

// CounterAdd: pdk.CounterAdd("requests", map[string]string{"route": "/a"}, 1).
func CounterAdd(name string, labels map[string]string, value float64) error {
	return Metric(MetricCounterAdd, name, labels, value)
}

func GaugeSet(name string, labels map[string]string, value float64) error {
	return Metric(MetricGaugeSet, name, labels, value)
}

func GaugeAdd(name string, labels map[string]string, value float64) error {
	return Metric(MetricGaugeAdd, name, labels, value)
}

func HistogramObserve(name string, labels map[string]string, value float64) error {
	return Metric(MetricHistogramObserve, name, labels, value)
}
