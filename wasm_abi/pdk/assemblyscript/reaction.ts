// What a plugin answers, and what it subscribes to, with their msgpack encodings.

import { Writer } from "./msgpack";
import { Value } from "./value";

enum ReactionKind {
  Continue,
  Reject,
  Rewrite,
}

/** The answer to one event; build it with Reaction.continue/reject/fail/rewrite. */
export class Reaction {
  private constructor(
    private kind: ReactionKind,
    private message: string,
    private status: i32,
    private event: Value,
  ) {}

  /** Let the event through unchanged. */
  static continue(): Reaction {
    return new Reaction(ReactionKind.Continue, "", 0, new Value());
  }

  /** Refuse the event with a message and an HTTP status (400..599). */
  static reject(message: string, status: i32): Reaction {
    return new Reaction(ReactionKind.Reject, message, status, new Value());
  }

  /** Refuse the event with a message, leaving the status to the gateway. */
  static fail(message: string): Reaction {
    return new Reaction(ReactionKind.Reject, message, 0, new Value());
  }

  /** Replace the incoming event (sync event.received / function.invoking only). */
  static rewrite(event: Value): Reaction {
    return new Reaction(ReactionKind.Rewrite, "", 0, event);
  }

  get isContinue(): bool {
    return this.kind == ReactionKind.Continue;
  }

  /** The msgpack the ABI expects (call only when !isContinue: continue is answered as 0). */
  encode(): Uint8Array {
    const w = new Writer();
    if (this.kind == ReactionKind.Reject) {
      w.mapHeader(this.status != 0 ? 2 : 1);
      w.string("error");
      w.string(this.message);
      if (this.status != 0) {
        w.string("status");
        w.int(<i64>this.status);
      }
    } else {
      w.mapHeader(1);
      w.string("event");
      w.value(this.event);
    }
    return w.finish();
  }
}

/** One entry of the plugin's subscription list. */
export class Subscription {
  /** `sync`: the gateway waits for the reaction; otherwise it fires and forgets. */
  constructor(public eventType: string, public sync: bool) {}

  static sync(eventType: string): Subscription {
    return new Subscription(eventType, true);
  }

  static async(eventType: string): Subscription {
    return new Subscription(eventType, false);
  }
}

export function encodeSubscriptions(subscriptions: Subscription[]): Uint8Array {
  const w = new Writer();
  w.arrayHeader(subscriptions.length);
  for (let i = 0; i < subscriptions.length; i++) {
    w.mapHeader(2);
    w.string("eventType");
    w.string(subscriptions[i].eventType);
    w.string("type");
    w.string(subscriptions[i].sync ? "sync" : "async");
  }
  return w.finish();
}
