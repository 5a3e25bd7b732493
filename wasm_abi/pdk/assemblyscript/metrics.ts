// The plugin's own metrics (capability metrics, ABI.md section 7.1), exported on the gateway's /metrics
// as eventgateway_plugin_custom_<name>{plugin="<plugin>", <labels>}. Names match [a-zA-Z_][a-zA-Z0-9_]*
// (at most 64 bytes); at most 8 labels, values at most 128 bytes; a name keeps the kind and label names
// it was first used with. Past the plugin's series cap: CapError.Quota.
//
//   import { metrics, Labels } from "./pdk";
//   metrics.counterAdd("requests", new Labels().add("route", "/a"), 1);

import { CapError, CapResult } from "./capability";
import { Writer } from "./msgpack";

// @ts-ignore: decorator
@external("eventgateway", "metric")
declare function hostMetric(kind: i32, name: usize, nameLen: i32, labels: usize, labelsLen: i32, value: f64): i32;

/** The kind argument of the metric import. */
export enum MetricKind {
  CounterAdd = 0,
  GaugeSet = 1,
  GaugeAdd = 2,
  HistogramObserve = 3,
}

/** A metric's labels, built one pair at a time: `new Labels().add("route", "/a")`. */
export class Labels {
  names: string[] = [];
  values: string[] = [];

  add(name: string, value: string): Labels {
    this.names.push(name);
    this.values.push(value);
    return this;
  }

  get length(): i32 {
    return this.names.length;
  }

  /** The msgpack map the metric import takes (empty for no labels). */
  encode(): Uint8Array {
    if (this.names.length == 0) return new Uint8Array(0);
    const w = new Writer();
    w.mapHeader(this.names.length);
    for (let i = 0; i < this.names.length; i++) {
      w.string(this.names[i]);
      w.string(this.values[i]);
    }
    return w.finish();
  }
}

/** One metric call; `labels` may be null. */
export function record(kind: MetricKind, name: string, labels: Labels | null, value: f64): CapResult<bool> {
  const n = Uint8Array.wrap(String.UTF8.encode(name));
  const l = labels !== null ? labels.encode() : new Uint8Array(0);
  const rc = hostMetric(<i32>kind, n.dataStart, n.length, l.dataStart, l.length, value);
  return rc < 0 ? new CapResult<bool>(false, <CapError>rc) : new CapResult<bool>(true);
}

/** Add a finite value >= 0 to a counter. */
export function counterAdd(name: string, labels: Labels | null, value: f64): CapResult<bool> {
  return record(MetricKind.CounterAdd, name, labels, value);
}

export function gaugeSet(name: string, labels: Labels | null, value: f64): CapResult<bool> {
  return record(MetricKind.GaugeSet, name, labels, value);
}

export function gaugeAdd(name: string, labels: Labels | null, value: f64): CapResult<bool> {
  return record(MetricKind.GaugeAdd, name, labels, value);
}

export function histogramObserve(name: string, labels: Labels | null, value: f64): CapResult<bool> {
  return record(MetricKind.HistogramObserve, name, labels, value);
}
