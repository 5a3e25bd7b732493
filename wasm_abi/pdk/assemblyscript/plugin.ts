// The Plugin base class and the registration the ABI glue dispatches to.

import { Event } from "./event";
import { Reaction, Subscription } from "./reaction";
import { Value } from "./value";

/**
 * What a plugin extends. The registered object lives in the instance, so its fields keep state
 * across events (until the host recreates the instance, e.g. after a fault).
 */
export class Plugin {
  /** The system events to receive. */
  subscriptions(): Subscription[] {
    return [];
  }

  /** Read the config map (nil when the gateway has none); a non-empty string fails the load. */
  init(config: Value): string {
    return "";
  }

  /** Answer one system event. */
  react(event: Event): Reaction {
    return Reaction.continue();
  }
}

let registered: Plugin | null = null;

/** Install the plugin; call it once at the top level of the plugin's entry file. */
export function register(plugin: Plugin): void {
  registered = plugin;
}

export function registeredPlugin(): Plugin {
  const plugin = registered;
  if (plugin === null) throw new Error("eventgateway pdk: no plugin registered (call register() at top level)");
  return plugin;
}
