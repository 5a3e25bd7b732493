// The ABI exports. A plugin's entry file re-exports them: `export * from "./pdk/exports";`.

import { Event } from "./event";
import { answer, handOver, markInitialized, isInitialized } from "./glue";
import { decodeRaw } from "./msgpack";
import { registeredPlugin } from "./plugin";
import { encodeSubscriptions, Reaction } from "./reaction";
import { Value } from "./value";

export function eventgateway_abi_v1(): void {}

// Plugins build with `--runtime minimal`: no collection steps interleaved with every allocation (which
// made decoding an event cost ~40% more fuel), but one full collection at the start of each call, when
// no managed value is on the stack and the globals (the plugin, the last answer) are the only roots.
// The garbage of one call is bounded by its fuel; the instance's memory stays flat across calls.

/** Input buffers live outside the GC heap (heap.alloc), so the collector never touches them. */
export function alloc(size: i32): i32 {
  if (size < 0) return 0;
  return <i32>heap.alloc(size > 0 ? <usize>size : 1);
}

export function subscriptions(): i64 {
  __collect();
  return handOver(encodeSubscriptions(registeredPlugin().subscriptions()));
}

export function init(ptr: i32, len: i32): i64 {
  __collect();
  const decoded = decodeRaw(<usize>ptr, len);
  heap.free(<usize>ptr);
  if (!decoded.ok) return answer(Reaction.fail("init: config is not msgpack: " + decoded.error));
  const message = registeredPlugin().init(decoded.value);
  if (message.length > 0) return answer(Reaction.fail(message));
  markInitialized();
  return 0;
}

export function react(ptr: i32, len: i32): i64 {
  __collect();
  const decoded = decodeRaw(<usize>ptr, len);
  heap.free(<usize>ptr);
  const plugin = registeredPlugin();
  if (!isInitialized()) {
    // The host skips init when the plugin has no config: start from an empty one.
    const message = plugin.init(new Value());
    if (message.length > 0) return answer(Reaction.fail(message));
    markInitialized();
  }
  if (!decoded.ok) return answer(Reaction.fail("react: event is not msgpack: " + decoded.error));
  return answer(plugin.react(new Event(decoded.value)));
}
