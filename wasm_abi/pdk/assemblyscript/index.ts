// Guest kit for event gateway plugins written in AssemblyScript (ABI eventgateway_abi_v1).
//
// A plugin extends Plugin, calls register() at the top level of its entry file and re-exports the
// ABI glue with `export * from "./pdk/exports";`. The kit ships its own msgpack codec and needs no
// other package at run time. Build with
//   asc plugin.ts --outFile plugin.wasm -O3 --runtime minimal --use abort=pdk/log/abortWithLog

export { Entry, Kind, Value } from "./value";
export { CloudEvent, Event } from "./event";
export { Reaction, Subscription } from "./reaction";
export { Plugin, register } from "./plugin";
export { Decoded, decode, encode } from "./msgpack";
export { Level, log, debug, info, warn, error } from "./log";
