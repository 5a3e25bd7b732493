// Test plugin for the kit's typed event access (tests/pdk/test_assemblyscript_accessors.py): it
// answers every event.received by rewriting the incoming event's data into a report of what the
// accessors read.
import { Event, Plugin, Reaction, register, Subscription, Value } from "./pdk";
export * from "./pdk/exports";

function str(s: string): Value {
  return Value.string(s);
}

class Accessors extends Plugin {
  subscriptions(): Subscription[] {
    return [Subscription.sync("eventgateway.event.received")];
  }

  react(event: Event): Reaction {
    const incoming = event.incoming();
    const data = incoming.data;
    const report = Value.map();
    report.set("systemType", str(event.type));
    report.set("type", str(incoming.type));
    report.set("id", str(incoming.id));
    report.set("source", str(incoming.source));
    report.set("path", str(event.path));
    report.set("header", str(event.header("x-probe")));
    const count = data.get("count");
    report.set("countPlusOne", count.isInt() ? Value.int(count.asInt() + 1) : Value.nil());
    const ratio = data.get("ratio");
    report.set("ratioTimesTwo", ratio.isNumber() ? Value.float64(ratio.asFloat() * 2) : Value.nil());
    const flag = data.get("flag");
    report.set("notFlag", flag.isBool() ? Value.bool(!flag.asBool()) : Value.nil());
    const blob = data.get("blob");
    report.set("blobLength", blob.isBinary() ? Value.int(blob.asBytes().length) : Value.nil());
    report.set("blob", blob.isBinary() ? Value.binary(blob.asBytes()) : Value.nil());
    const tags = data.get("tags");
    report.set("tagCount", tags.isArray() ? Value.int(tags.asArray().length) : Value.nil());
    report.set("lastTag", tags.at(2));
    report.set("userName", data.get("user").get("name"));
    report.set("firstRole", data.get("user").get("roles").at(0));
    report.set("nothingIsNil", Value.bool(data.has("nothing") && data.get("nothing").isNil()));
    report.set("missingIsNil", Value.bool(data.get("missing").get("deeper").isNil()));
    report.set("big", Value.uint(data.get("big").asUint()));
    const negative = data.get("negative");
    report.set("negative", negative.isInt() ? Value.int(negative.asInt()) : Value.nil());
    report.set("countAsString", Value.bool(!count.isString()));
    const rewritten = incoming.raw.copy();
    rewritten.set("data", report);
    return Reaction.rewrite(rewritten);
  }
}

register(new Accessors());
