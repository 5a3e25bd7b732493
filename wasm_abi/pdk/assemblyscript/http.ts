// Outbound HTTP (capability http, ABI.md section 7.1): a request to a URL under one of the plugin's
// grants. The host follows redirects (each target checked against the grants) and caps the response.
//
//   import { http } from "./pdk";
//   const answer = http.request(new http.Request("POST", url).header("Authorization", token));
//   if (answer.ok && answer.value!.isSuccess) { ... }

import { CapError, CapResult } from "./capability";
import { decode, Writer } from "./msgpack";

// @ts-ignore: decorator
@external("eventgateway", "http_request")
declare function hostHttpRequest(req: usize, reqLen: i32): i32;

// @ts-ignore: decorator
@external("eventgateway", "http_response")
declare function hostHttpResponse(buf: usize, bufLen: i32): i32;

/** One header of a request or response. */
export class Header {
  constructor(public name: string, public value: string) {}
}

/**
 * One request. `timeoutMs` 0 leaves the timeout to the host (Limits.http_timeout, never past the
 * reaction's deadline). Host, Content-Length, Connection and the other hop-by-hop headers may not be
 * set (CapError.Invalid).
 */
export class Request {
  headers: Header[] = [];
  body: Uint8Array = new Uint8Array(0);
  timeoutMs: i64 = 0;

  constructor(public method: string, public url: string) {}

  /** Add a header (sent in the order added); returns the request. */
  header(name: string, value: string): Request {
    this.headers.push(new Header(name, value));
    return this;
  }

  /** The msgpack map http_request takes. */
  encode(): Uint8Array {
    const w = new Writer();
    w.mapHeader(this.timeoutMs > 0 ? 5 : 4);
    w.string("url");
    w.string(this.url);
    w.string("method");
    w.string(this.method.length > 0 ? this.method : "GET");
    w.string("headers");
    w.mapHeader(this.headers.length);
    for (let i = 0; i < this.headers.length; i++) {
      w.string(this.headers[i].name);
      w.string(this.headers[i].value);
    }
    w.string("body");
    w.lenHeader(this.body.length, 0xc4, 0xc5, 0xc6);
    w.raw(this.body.dataStart, this.body.length);
    if (this.timeoutMs > 0) {
      w.string("timeoutMs");
      w.int(this.timeoutMs);
    }
    return w.finish();
  }
}

/** The answer; any HTTP status is a success of the call. */
export class Response {
  status: i32 = 0;
  /** Names in canonical case (Content-Type), repeated headers joined by ", ". */
  headers: Header[] = [];
  body: Uint8Array = new Uint8Array(0);

  /** A header's value, its name matched in any case; null when absent. */
  header(name: string): string | null {
    const wanted = name.toLowerCase();
    for (let i = 0; i < this.headers.length; i++) {
      if (this.headers[i].name.toLowerCase() == wanted) return this.headers[i].value;
    }
    return null;
  }

  /** A 2xx status. */
  get isSuccess(): bool {
    return this.status >= 200 && this.status < 300;
  }

  /** Read the host's msgpack answer; null when it is not the documented map. */
  static decode(bytes: Uint8Array): Response | null {
    const decoded = decode(bytes);
    if (!decoded.ok) return null;
    const v = decoded.value;
    const status = v.get("status");
    if (!status.isInt() || status.asInt() < 0 || status.asInt() > 999) return null;
    const response = new Response();
    response.status = <i32>status.asInt();
    const entries = v.get("headers").asEntries();
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].key.isString() && entries[i].value.isString()) {
        response.headers.push(new Header(entries[i].key.asString(), entries[i].value.asString()));
      }
    }
    const body = v.get("body");
    if (body.isBinary()) response.body = body.asBytes();
    else if (body.isString()) response.body = Uint8Array.wrap(String.UTF8.encode(body.asString()));
    return response;
  }
}

/**
 * Send `req` and wait for the answer; the error is CapError.Denied, Timeout, Unavailable, TooLarge,
 * Invalid (also for an answer that does not decode) or NoFuel.
 */
export function request(req: Request): CapResult<Response | null> {
  const encoded = req.encode();
  const length = hostHttpRequest(encoded.dataStart, encoded.length);
  if (length < 0) return new CapResult<Response | null>(null, <CapError>length);
  let buf = new Uint8Array(length);
  while (true) {
    const rc = hostHttpResponse(buf.dataStart, buf.length);
    if (rc < 0) return new CapResult<Response | null>(null, <CapError>rc);
    if (rc <= buf.length) {
      const response = Response.decode(buf.subarray(0, rc)); // only what the host wrote
      return response !== null
        ? new CapResult<Response | null>(response)
        : new CapResult<Response | null>(null, CapError.Invalid);
    }
    // Too small (the response changed?): nothing was written; ask again with the length needed.
    buf = new Uint8Array(rc);
  }
  return new CapResult<Response | null>(null, CapError.Invalid);
}
