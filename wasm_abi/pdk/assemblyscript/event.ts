// Typed views of the system event handed to react and of the CloudEvent it carries.

import { Value } from "./value";

/**
 * The system event (eventgateway.event.received, eventgateway.function.invoking, ...). Accessors
 * answer "" or the nil Value when a field is absent, so a plugin never checks each level.
 */
export class Event {
  constructor(public raw: Value) {}

  /** The system event's own type, e.g. "eventgateway.function.invoked". */
  get type(): string {
    return this.raw.getString("type");
  }

  /** The system event's data map (event, path, headers, functionId, ...). */
  get data(): Value {
    return this.raw.get("data");
  }

  /** The user's event the system event is about (data.event). */
  incoming(): CloudEvent {
    return new CloudEvent(this.data.get("event"));
  }

  /** data.functionId of function.* events. */
  get functionId(): string {
    return this.data.getString("functionId");
  }

  /** data.space of function.* events. */
  get space(): string {
    return this.data.getString("space");
  }

  /** data.error of function.invocationFailed. */
  get error(): string {
    return this.data.getString("error");
  }

  /** data.result of function.invoked. */
  get result(): Value {
    return this.data.get("result");
  }

  /** data.path of event.received. */
  get path(): string {
    return this.data.getString("path");
  }

  /** One request header of event.received. */
  header(name: string): string {
    return this.data.get("headers").getString(name);
  }
}

/**
 * A CloudEvent in either spec version: the 1.0 attribute names (type, id, ...) are read first,
 * then the 0.1 ones (eventType, eventID, ...).
 */
export class CloudEvent {
  constructor(public raw: Value) {}

  private either(v1: string, v01: string): string {
    const first = this.raw.get(v1);
    return first.isString() ? first.str : this.raw.getString(v01);
  }

  /** `type` (1.0) or `eventType` (0.1). */
  get type(): string {
    return this.either("type", "eventType");
  }

  /** `id` (1.0) or `eventID` (0.1). */
  get id(): string {
    return this.either("id", "eventID");
  }

  get source(): string {
    return this.raw.getString("source");
  }

  /** `time` (1.0) or `eventTime` (0.1). */
  get time(): string {
    return this.either("time", "eventTime");
  }

  /** `datacontenttype` (1.0) or `contentType` (0.1). */
  get contentType(): string {
    return this.either("datacontenttype", "contentType");
  }

  /** The payload: a map for JSON objects, but any value is possible. */
  get data(): Value {
    return this.raw.get("data");
  }

  /** Any other attribute (extensions included). */
  get(key: string): Value {
    return this.raw.get(key);
  }
}
