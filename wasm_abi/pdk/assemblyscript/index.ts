// Guest kit for event gateway plugins written in AssemblyScript (ABI eventgateway_abi_v1).
//
// A plugin extends Plugin, calls register() at the top level of its entry file and re-exports the
// ABI glue with `export * from "./pdk/exports";`. The kit ships its own msgpack codec and needs no
// other package at run time. Build with
//   asc plugin.ts --outFile plugin.wasm -O3 --runtime minimal --use abort=pdk/log/abortWithLog
//
// Capabilities an operator grants (ABI.md section 7.1) have typed wrappers in the namespaces kv
// (kv.get/set/del/incr/cas/casAbsent), http (http.request) and metrics (metrics.counterAdd/gaugeSet/
// gaugeAdd/histogramObserve). Each returns a CapResult: `ok`, the `value`, or the `error` code
// (CapError, named after the ABI's codes by capErrorName). A module imports only the capability
// functions its code calls (the compiler drops the rest), so a plugin needs a grant only for what it uses.

import * as kv from "./kv";
import * as http from "./http";
import * as metrics from "./metrics";

export { Entry, Kind, Value } from "./value";
export { CloudEvent, Event } from "./event";
export { Reaction, Subscription } from "./reaction";
export { Plugin, register } from "./plugin";
export { Decoded, decode, encode } from "./msgpack";
export { Level, log, debug, info, warn, error } from "./log";
export { CapError, CapResult, capErrorName } from "./capability";
export { Labels } from "./metrics";
export { kv, http, metrics };
