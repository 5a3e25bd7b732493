// Add traceId, functionId and configured fields to an event's data before a function gets it,
// and count invocation outcomes (asynchronously) in the instance.
import { Entry, Event, info, Plugin, Reaction, register, Subscription, Value, warn } from "./pdk";
export * from "./pdk/exports";

function invalid(what: string): string {
  return "enricher: invalid config: " + what;
}

class Enricher extends Plugin {
  /** Config fields in config order; they override what the event carries. */
  fields: Entry[] = [];
  ok: i32 = 0;
  failed: i32 = 0;

  subscriptions(): Subscription[] {
    return [
      Subscription.sync("eventgateway.function.invoking"),
      Subscription.async("eventgateway.function.invoked"),
      Subscription.async("eventgateway.function.invocationFailed"),
    ];
  }

  init(config: Value): string {
    this.fields = [];
    if (config.isNil()) return "";
    if (!config.isMap()) return invalid("expected a map, got " + config.typeName);
    const fields = config.get("fields");
    if (fields.isNil()) return "";
    if (!fields.isMap()) return invalid("fields must be a map, got " + fields.typeName);
    const entries = fields.asEntries();
    for (let i = 0; i < entries.length; i++) {
      if (!entries[i].key.isString()) return invalid("fields keys must be strings");
      if (!entries[i].value.isString()) {
        return invalid("fields." + entries[i].key.asString() + " must be a string, got " + entries[i].value.typeName);
      }
      this.fields.push(entries[i]);
    }
    return "";
  }

  enrich(event: Event): Reaction {
    const incoming = event.incoming();
    if (!incoming.data.isMap()) return Reaction.continue();
    const data = incoming.data.copy();
    const id = incoming.raw.get("id");
    data.set("traceId", id.isNil() ? incoming.raw.get("eventID") : id);
    data.set("functionId", event.data.get("functionId"));
    for (let i = 0; i < this.fields.length; i++) data.set(this.fields[i].key.asString(), this.fields[i].value);
    const rewritten = incoming.raw.copy();
    rewritten.set("data", data);
    return Reaction.rewrite(rewritten);
  }

  counts(): string {
    return this.ok.toString() + " ok, " + this.failed.toString() + " failed";
  }

  react(event: Event): Reaction {
    const type = event.type;
    if (type == "eventgateway.function.invoking") return this.enrich(event);
    if (type == "eventgateway.function.invoked") {
      this.ok++;
      info("function " + event.functionId + " invoked: " + this.counts());
    } else if (type == "eventgateway.function.invocationFailed") {
      this.failed++;
      warn("function " + event.functionId + " failed: " + event.error + "; " + this.counts());
    }
    return Reaction.continue();
  }
}

register(new Enricher());
