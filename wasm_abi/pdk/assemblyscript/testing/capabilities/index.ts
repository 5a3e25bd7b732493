// Test plugin for the kit's capability wrappers (tests/pdk/test_kit_capabilities.py holds the
// contract): it runs the ops in the incoming event's data.ops through kv, metrics and http and
// rewrites the event's data into {"results": [...]}, one {"code": ...} map per op.
import { CapError, CapResult, Entry, Event, http, kv, Labels, metrics, Plugin, Reaction, register, Subscription, Value } from "./pdk";
export * from "./pdk/exports";

function result(code: i32): Value {
  return Value.map([new Entry(Value.string("code"), Value.int(code))]);
}

function failed<T>(r: CapResult<T>): Value {
  return result(<i32>r.error);
}

function okWith(name: string, v: Value): Value {
  const out = result(0);
  out.set(name, v);
  return out;
}

function bytesOf(op: Value, field: string): Uint8Array {
  return op.get(field).asBytes();
}

function run(op: Value): Value {
  const name = op.getString("op");
  const key = bytesOf(op, "key");
  if (name == "get") {
    const r = kv.get(key);
    if (!r.ok) return failed(r);
    const value = r.value;
    return value === null ? result(CapError.NotFound) : okWith("value", Value.binary(value));
  }
  if (name == "set") {
    const r = kv.set(key, bytesOf(op, "value"), op.get("ttlMs").asInt());
    return r.ok ? result(0) : failed(r);
  }
  if (name == "delete") {
    const r = kv.del(key);
    return r.ok ? okWith("deleted", Value.bool(r.value)) : failed(r);
  }
  if (name == "incr") {
    const r = kv.incr(key, op.get("delta").asInt(), op.get("ttlMs").asInt());
    return r.ok ? okWith("value", Value.int(r.value)) : failed(r);
  }
  if (name == "cas") {
    const r = op.get("expected").isNil()
      ? kv.casAbsent(key, bytesOf(op, "value"), op.get("ttlMs").asInt())
      : kv.cas(key, bytesOf(op, "expected"), bytesOf(op, "value"), op.get("ttlMs").asInt());
    return r.ok ? okWith("swapped", Value.bool(r.value)) : failed(r);
  }
  if (name == "metric") {
    const labels = new Labels();
    const entries = op.get("labels").asEntries();
    for (let i = 0; i < entries.length; i++) labels.add(entries[i].key.asString(), entries[i].value.asString());
    const kind = op.getString("kind");
    const metricName = op.getString("name");
    const value = op.get("value").asFloat();
    let r: CapResult<bool>;
    if (kind == "counter") r = metrics.counterAdd(metricName, labels, value);
    else if (kind == "gaugeSet") r = metrics.gaugeSet(metricName, labels, value);
    else if (kind == "gaugeAdd") r = metrics.gaugeAdd(metricName, labels, value);
    else if (kind == "histogram") r = metrics.histogramObserve(metricName, labels, value);
    else return result(CapError.Invalid);
    return r.ok ? result(0) : failed(r);
  }
  if (name == "http") {
    const method = op.get("method").isString() ? op.getString("method") : "GET";
    const req = new http.Request(method, op.getString("url"));
    const headers = op.get("headers").asEntries();
    for (let i = 0; i < headers.length; i++) req.header(headers[i].key.asString(), headers[i].value.asString());
    req.body = bytesOf(op, "body");
    req.timeoutMs = op.get("timeoutMs").asInt();
    const r = http.request(req);
    if (!r.ok) return failed(r);
    const response = r.value!;
    const out = okWith("status", Value.int(response.status));
    const map = Value.map();
    for (let i = 0; i < response.headers.length; i++) map.set(response.headers[i].name, Value.string(response.headers[i].value));
    out.set("headers", map);
    out.set("body", Value.binary(response.body));
    return out;
  }
  return result(CapError.Invalid);
}

class Capabilities extends Plugin {
  subscriptions(): Subscription[] {
    return [Subscription.sync("eventgateway.event.received")];
  }

  react(event: Event): Reaction {
    const incoming = event.incoming();
    const ops = incoming.data.get("ops");
    if (!ops.isArray()) return Reaction.continue();
    const items = ops.asArray();
    const results: Value[] = [];
    for (let i = 0; i < items.length; i++) results.push(run(items[i]));
    const rewritten = incoming.raw.copy();
    rewritten.set("data", Value.map([new Entry(Value.string("results"), Value.array(results))]));
    return Reaction.rewrite(rewritten);
  }
}

register(new Capabilities());
