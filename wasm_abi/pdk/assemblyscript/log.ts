// The host's eventgateway.log import. The gateway tags each line with the plugin's name.

// @ts-ignore: decorator
@external("eventgateway", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;

export enum Level {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

/** Log one message at `level`. */
export function log(level: Level, message: string): void {
  const utf8 = String.UTF8.encode(message);
  hostLog(<i32>level, changetype<usize>(utf8), utf8.byteLength);
}

export function debug(message: string): void {
  log(Level.Debug, message);
}

export function info(message: string): void {
  log(Level.Info, message);
}

export function warn(message: string): void {
  log(Level.Warn, message);
}

export function error(message: string): void {
  log(Level.Error, message);
}

/**
 * Replaces AssemblyScript's `env.abort` import (the builder passes `--use abort=...`): a failed
 * assertion or a bad cast logs where it happened, then traps, so the gateway reports a fault.
 */
export function abortWithLog(message: string | null, fileName: string | null, line: u32, column: u32): void {
  const what = message !== null ? message : "abort";
  const where = fileName !== null ? fileName : "?";
  log(Level.Error, "plugin aborted: " + what + " at " + where + ":" + line.toString() + ":" + column.toString());
  unreachable();
}
