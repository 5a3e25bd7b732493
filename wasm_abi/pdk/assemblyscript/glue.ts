// Output handling shared by the ABI exports (kept out of exports.ts, whose every export becomes
// a module export of the plugin).

import { Reaction } from "./reaction";

/** The last answer handed to the host; a global keeps it alive (GC root) until the next call. */
let output: Uint8Array = new Uint8Array(0);
let initialized = false;

export function handOver(bytes: Uint8Array): i64 {
  output = bytes;
  return (<i64>output.dataStart << 32) | <i64>output.length;
}

export function answer(reaction: Reaction): i64 {
  return reaction.isContinue ? 0 : handOver(reaction.encode());
}

export function isInitialized(): bool {
  return initialized;
}

export function markInitialized(): void {
  initialized = true;
}
