// Reject incoming events by type or by a data field's value, per the rules of the init config:
// {"denyTypes": [str...], "denyData": {field: str}, "status": int} (all optional).
import { Event, Plugin, Reaction, register, Subscription, Value } from "./pdk";
export * from "./pdk/exports";

function invalid(what: string): string {
  return "guard: invalid config: " + what;
}

class Guard extends Plugin {
  denyTypes: string[] = [];
  /** (field, value) pairs in config order: the first match names the field in the message. */
  denyFields: string[] = [];
  denyValues: string[] = [];
  status: i32 = 403;

  subscriptions(): Subscription[] {
    return [Subscription.sync("eventgateway.event.received")];
  }

  init(config: Value): string {
    this.denyTypes = [];
    this.denyFields = [];
    this.denyValues = [];
    this.status = 403;
    if (config.isNil()) return "";
    if (!config.isMap()) return invalid("expected a map, got " + config.typeName);
    const types = config.get("denyTypes");
    if (!types.isNil()) {
      if (!types.isArray()) return invalid("denyTypes must be an array, got " + types.typeName);
      const items = types.asArray();
      for (let i = 0; i < items.length; i++) {
        if (!items[i].isString()) return invalid("denyTypes must hold strings, got " + items[i].typeName);
        this.denyTypes.push(items[i].asString());
      }
    }
    const data = config.get("denyData");
    if (!data.isNil()) {
      if (!data.isMap()) return invalid("denyData must be a map, got " + data.typeName);
      const entries = data.asEntries();
      for (let i = 0; i < entries.length; i++) {
        if (!entries[i].key.isString()) return invalid("denyData keys must be strings");
        const field = entries[i].key.asString();
        const value = entries[i].value;
        if (!value.isString()) return invalid("denyData." + field + " must be a string, got " + value.typeName);
        this.denyFields.push(field);
        this.denyValues.push(value.asString());
      }
    }
    const status = config.get("status");
    if (!status.isNil()) {
      if (!status.isInt()) return invalid("status must be an int, got " + status.typeName);
      const s = status.asInt();
      if (s < 400 || s > 599) return invalid("status must be within 400..599, got " + s.toString());
      this.status = <i32>s;
    }
    return "";
  }

  react(event: Event): Reaction {
    const incoming = event.incoming();
    const type = incoming.type;
    if (this.denyTypes.includes(type)) {
      return Reaction.reject("guard: event type " + type + " is denied", this.status);
    }
    const data = incoming.data;
    if (data.isMap()) {
      for (let i = 0; i < this.denyFields.length; i++) {
        const value = data.get(this.denyFields[i]);
        if (value.isString() && value.asString() == this.denyValues[i]) {
          return Reaction.reject("guard: data field " + this.denyFields[i] + " is denied", this.status);
        }
      }
    }
    return Reaction.continue();
  }
}

register(new Guard());
