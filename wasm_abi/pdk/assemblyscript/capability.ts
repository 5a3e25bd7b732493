// What the capability calls (kv, http, metrics; ABI.md section 7.1) answer. Every capability import
// returns an i32: >= 0 is success, a negative value is one of the ABI's error codes, the same for every
// capability. The wrappers (kv.ts, http.ts, metrics.ts) return a CapResult holding the value or the code.

/** The ABI's error codes (capErrorName gives the ABI's name: CapError.Timeout is "EG_TIMEOUT"). */
export enum CapError {
  /** EG_OK: success. */
  Ok = 0,
  /** EG_NOT_FOUND: kv: no such key (or it expired); http: no response held. */
  NotFound = -1,
  /** EG_INVALID: a malformed argument (key, TTL, URL, header, metric name...). */
  Invalid = -2,
  /** EG_TOO_LARGE: a key, value, request or response over its limit. */
  TooLarge = -3,
  /** EG_QUOTA: the plugin's kv keys/bytes or metric series are used up. */
  Quota = -4,
  /** EG_UNAVAILABLE: the backend cannot answer now. */
  Unavailable = -5,
  /** EG_DENIED: http: the URL is under no grant of this plugin. */
  Denied = -6,
  /** EG_TIMEOUT: the call ran out of time. */
  Timeout = -7,
  /** EG_NOT_A_NUMBER: kv incr on a value that is not a decimal int64, or an overflow. */
  NotANumber = -8,
  /** EG_NO_FUEL: the remaining fuel could not pay for the call; nothing was done. */
  NoFuel = -9,
}

const CAP_ERROR_NAMES: string[] = [
  "EG_OK", "EG_NOT_FOUND", "EG_INVALID", "EG_TOO_LARGE", "EG_QUOTA", "EG_UNAVAILABLE", "EG_DENIED",
  "EG_TIMEOUT", "EG_NOT_A_NUMBER", "EG_NO_FUEL",
];

/** The ABI's name of a code ("EG_TIMEOUT"; "EG_UNKNOWN" for a code this kit does not know). */
export function capErrorName(code: i32): string {
  return code <= 0 && -code < CAP_ERROR_NAMES.length ? CAP_ERROR_NAMES[-code] : "EG_UNKNOWN";
}

/**
 * A wrapper's answer: `ok` and the `value`, or the `error` code (`value` is then the type's zero:
 * null, 0 or false).
 */
export class CapResult<T> {
  constructor(public value: T, public error: CapError = CapError.Ok) {}

  get ok(): bool {
    return this.error == CapError.Ok;
  }

  /** The ABI's name of `error` ("EG_OK" on success). */
  get errorName(): string {
    return capErrorName(<i32>this.error);
  }
}

/** The bytes of a kv key or value: a string (as UTF-8) or a Uint8Array (as it is). */
export function bytesOf<T>(x: T): Uint8Array {
  if (isString<T>()) {
    return Uint8Array.wrap(String.UTF8.encode(changetype<string>(x)));
  } else if (x instanceof Uint8Array) {
    return x;
  } else {
    ERROR("capability arguments are a string or a Uint8Array");
  }
  return new Uint8Array(0);
}
