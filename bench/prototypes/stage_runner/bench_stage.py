"""Prototype bench: one native call per plugin stage vs the Python path (bench_react --floor rows).

Run: python -m bench.prototypes.stage_runner.bench_stage [rounds] [events] (builds the C sources with gcc first,
into a temporary directory; see README.md here)
"""
from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from ctypes import c_int, c_int32, c_uint64, c_void_p

import msgpack

from bench.prototypes.stage_runner.build import build, load_extension
from bench.bench_react import STAGE_EVENT, STAGE_HEADERS, stage_plugins
from wasm_abi import native

BUILT = build()


class WtApi(ctypes.Structure):
    _fields_ = [(n, c_void_p) for n in ("call_unchecked", "set_fuel", "get_fuel", "set_deadline",
                                         "memory_data_size", "save_thread", "restore_thread")]


class PluginCall(ctypes.Structure):
    _fields_ = [("ctx", c_void_p), ("alloc", c_void_p), ("react", c_void_p), ("args", c_void_p),
                ("trap", c_void_p), ("mem", c_void_p), ("base", c_void_p), ("mem_size", c_uint64),
                ("max_mem", c_uint64), ("max_output", c_uint64), ("deadline_ticks", c_uint64)]


class StageResult(ctypes.Structure):
    _fields_ = [("status", c_int32), ("index", c_int32), ("phase", c_int32), ("_pad", c_int32),
                ("err", c_void_p), ("ptr", c_uint64), ("len", c_uint64), ("size", c_uint64)]


def addr(f) -> int:
    return ctypes.cast(f, c_void_p).value


def make_api(release_gil: bool) -> WtApi:
    api = WtApi(addr(native.call_unchecked), addr(native.set_fuel), addr(native.get_fuel),
                addr(native.set_epoch_deadline), addr(native.memory_data_size), None, None)
    if release_gil:
        api.save_thread = addr(ctypes.pythonapi.PyEval_SaveThread)
        api.restore_thread = addr(ctypes.pythonapi.PyEval_RestoreThread)
    return api


def plugin_call(instance) -> PluginCall:
    lim = instance.limits
    return PluginCall(instance._ctx, instance._alloc, instance._react, instance._argsref, instance._trapref,
                      instance._mem, instance._base, instance._mem_size, lim.max_memory_bytes,
                      lim.max_output_bytes, instance._sync_ticks)


def load_runner(gil: str):
    # keep: PyDLL (GIL held on entry; released per Wasm call through the api pointers, or kept)
    # whole: CDLL (ctypes releases the GIL around the whole stage; only safe without host calls)
    lib = (ctypes.PyDLL if gil != "whole" else ctypes.CDLL)(str(BUILT / "libstage_runner.so"))
    f = lib.run_stage
    f.restype = c_int
    f.argtypes = [c_void_p, c_int, c_void_p, ctypes.c_char_p, c_uint64, c_uint64, c_void_p, c_void_p]
    return f


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    from gateway.events import system_events
    from gateway.metrics import Metrics
    from gateway.plugins.stages import ActivePluginSet

    plugins = stage_plugins()
    metrics = Metrics()
    active = ActivePluginSet(plugins, metrics, None, validate_event=lambda event: None)
    event, headers = STAGE_EVENT, STAGE_HEADERS
    answer = json.dumps({"statusCode": 200, "body": "ok"}).encode()
    built = (system_events.event_received(event, "/bench", headers),
             system_events.function_invoking("default", "bench", event),
             system_events.function_invoked("default", "bench", event, system_events.decode_result(answer)))
    packb = msgpack.Packer(use_bin_type=True, autoreset=True).pack
    payloads = [packb(system_events.for_plugins(e)) for e in built]
    stage_types = [e["type"] for e in built]
    hosts = [plugin.host for plugin in plugins]
    pools = [host._pool for host in hosts]
    instances = [pool.acquire() for pool in pools]
    assert all(i._hostcalls is None for i in instances), "bench plugin has capability host state"
    fuel = hosts[0].limits.sync_fuel
    reactions = metrics.plugin_reactions
    names = [p.name for p in plugins]

    apis = {"keep": make_api(False), "per-call": make_api(True), "whole": make_api(False)}
    runners = {g: load_runner(g) for g in apis}
    # one PluginCall per instance, made once (what PluginInstance.__init__ would do)
    calls = {id(i): plugin_call(i) for i in instances}
    callrefs = {k: ctypes.addressof(v) for k, v in calls.items()}
    arr = (c_void_p * 3)(*[callrefs[id(i)] for i in instances])
    arrref = ctypes.addressof(arr)
    fuel_used = (c_uint64 * 3)()
    fuelref = ctypes.addressof(fuel_used)
    res = StageResult()
    resref = ctypes.addressof(res)
    apirefs = {g: ctypes.addressof(a) for g, a in apis.items()}

    # --- correctness: same fuel as the Python path, continue everywhere
    py_fuel = [[instance.react(p, fuel, True)[1] for instance in instances] for p in payloads]
    for g in apis:
        for si, p in enumerate(payloads):
            done = runners[g](apirefs[g], 3, arrref, p, len(p), fuel, fuelref, resref)
            assert done == 3 and res.status == 0 and res.index == 3, (g, done, res.status)
            assert list(fuel_used) == py_fuel[si], (g, list(fuel_used), py_fuel[si])
    # a trap (the stage plugin hits `unreachable` on an incoming event of type "never.this")
    bad_event = dict(event, type="never.this")
    bad = system_events.event_received(bad_event, "/bench", headers)
    bad_payload = packb(system_events.for_plugins(bad))
    runner = runners["per-call"]
    done = runner(apirefs["per-call"], 3, arrref, bad_payload, len(bad_payload), fuel, fuelref, resref)
    print(f"trap check: done={done} status={res.status} index={res.index} phase={res.phase} "
          f"trap={instances[0]._trap.value!r}")
    assert done == 0 and res.status == 3 and res.phase == 1
    try:
        raise instances[0]._fault(None, "react", "sync_timeout")
    except Exception as exc:  # the existing Python code turns the trap into the fault
        print("  ->", type(exc).__name__, str(exc).splitlines()[0][:120])
    # out of fuel
    done = runner(apirefs["per-call"], 3, arrref, payloads[0], len(payloads[0]), 50, fuelref, resref)
    print(f"fuel check: done={done} status={res.status} index={res.index} phase={res.phase}")
    try:
        raise instances[0]._fault(None, "react", "sync_timeout")
    except Exception as exc:
        print("  ->", type(exc).__name__, str(exc).splitlines()[0][:120])
    # the faulted instances are thrown away, as the product would: make fresh ones
    for k, pool in enumerate(pools):
        pool.discard(instances[k])
    instances = [pool.acquire() for pool in pools]
    calls = {id(i): plugin_call(i) for i in instances}
    callrefs = {k: ctypes.addressof(v) for k, v in calls.items()}
    arr = (c_void_p * 3)(*[callrefs[id(i)] for i in instances])
    arrref = ctypes.addressof(arr)

    # --- timed rows
    def py_native_calls() -> None:
        for payload in payloads:
            for instance in instances:
                instance.react(payload, fuel, True)

    def stage_fn(g):
        run, apiref = runners[g], apirefs[g]

        def native_stages() -> None:
            for payload in payloads:
                run(apiref, 3, arrref, payload, len(payload), fuel, fuelref, resref)
        return native_stages

    # the native stage with the Python machinery a product stage would still have around it:
    # subscriber lookup, pool acquire/release per plugin, the pointer array filled, health check,
    # the verdict read, one metrics record per reaction (with its wall time).
    run_pc, api_pc = runners["per-call"], apirefs["per-call"]
    sync_subs = {t: tuple(zip(names, pools, hosts, strict=True)) for t in stage_types}
    perf = time.perf_counter
    stage_arr = (c_void_p * 3)()
    stage_arrref = ctypes.addressof(stage_arr)

    def product_stages() -> None:
        for payload, etype in zip(payloads, stage_types, strict=True):
            subs = sync_subs[etype]
            taken = []
            for k, (_name, pool, host) in enumerate(subs):
                if host._health.retry_at_monotonic:
                    host._health.check()
                inst = pool.acquire()
                taken.append(inst)
                stage_arr[k] = callrefs[id(inst)]
            started = perf()
            done = run_pc(api_pc, len(subs), stage_arrref, payload, len(payload), fuel, fuelref, resref)
            seconds = (perf() - started) / len(subs)
            if res.status:
                raise RuntimeError("not in this bench")
            for k in range(done):
                name, pool, host = subs[k]
                taken[k].ok_sync += 1
                pool.release(taken[k])
                reactions.record(name, etype, "sync", "continue", seconds, fuel_used[k])

    ext_run = load_extension(BUILT).run_stage

    def ext_stages() -> None:
        for payload in payloads:
            ext_run(api_pc, 3, arrref, payload, fuel, fuelref, resref)

    def ext_empty_stages() -> None:
        for payload in payloads:
            ext_run(api_pc, 0, arrref, payload, fuel, fuelref, resref)

    from gateway.plugins.stages import _SyncStage

    def ext_full_stages() -> None:
        # as react_sync_now does it: the stage object, the payload encoded once per stage, the outcome
        for system_event in built:
            stage = _SyncStage(system_event)
            etype = stage.event_type
            payload = stage.payload(None)
            subs = sync_subs[etype]
            taken = []
            for k, (_name, pool, host) in enumerate(subs):
                if host._health.retry_at_monotonic:
                    host._health.check()
                inst = pool.acquire()
                taken.append(inst)
                stage_arr[k] = callrefs[id(inst)]
            started = perf()
            done = ext_run(api_pc, len(subs), stage_arrref, payload, fuel, fuelref, resref)
            seconds = (perf() - started) / len(subs)
            if res.status:
                raise RuntimeError("not in this bench")
            for k in range(done):
                name, pool, host = subs[k]
                taken[k].ok_sync += 1
                pool.release(taken[k])
                reactions.record(name, etype, "sync", "continue", seconds, fuel_used[k])
            stage.outcome()

    def ext_full_stage(si: int) -> None:
        system_event = built[si]
        stage = _SyncStage(system_event)
        etype = stage.event_type
        payload = stage.payload(None)
        subs = sync_subs[etype]
        taken = []
        for k, (_name, pool, host) in enumerate(subs):
            if host._health.retry_at_monotonic:
                host._health.check()
            inst = pool.acquire()
            taken.append(inst)
            stage_arr[k] = callrefs[id(inst)]
        started = perf()
        done = ext_run(api_pc, len(subs), stage_arrref, payload, fuel, fuelref, resref)
        seconds = (perf() - started) / len(subs)
        for k in range(done):
            name, pool, host = subs[k]
            taken[k].ok_sync += 1
            pool.release(taken[k])
            reactions.record(name, etype, "sync", "continue", seconds, fuel_used[k])
        stage.outcome()

    def ext_product_stages() -> None:
        for payload, etype in zip(payloads, stage_types, strict=True):
            subs = sync_subs[etype]
            taken = []
            for k, (_name, pool, host) in enumerate(subs):
                if host._health.retry_at_monotonic:
                    host._health.check()
                inst = pool.acquire()
                taken.append(inst)
                stage_arr[k] = callrefs[id(inst)]
            started = perf()
            done = ext_run(api_pc, len(subs), stage_arrref, payload, fuel, fuelref, resref)
            seconds = (perf() - started) / len(subs)
            if res.status:
                raise RuntimeError("not in this bench")
            for k in range(done):
                name, pool, host = subs[k]
                taken[k].ok_sync += 1
                pool.release(taken[k])
                reactions.record(name, etype, "sync", "continue", seconds, fuel_used[k])

    def empty_stages() -> None:
        for payload in payloads:
            run_pc(api_pc, 0, arrref, payload, len(payload), fuel, fuelref, resref)

    def product_stages_no_metrics() -> None:
        for payload, etype in zip(payloads, stage_types, strict=True):
            subs = sync_subs[etype]
            taken = []
            for k, (_name, pool, host) in enumerate(subs):
                if host._health.retry_at_monotonic:
                    host._health.check()
                inst = pool.acquire()
                taken.append(inst)
                stage_arr[k] = callrefs[id(inst)]
            done = run_pc(api_pc, len(subs), stage_arrref, payload, len(payload), fuel, fuelref, resref)
            if res.status:
                raise RuntimeError("not in this bench")
            for k in range(done):
                taken[k].ok_sync += 1
                subs[k][1].release(taken[k])

    def plugin_stages() -> None:
        for stage_event in built:
            active.react_sync_now(stage_event)

    other = bytearray(os.urandom(4 << 20))
    others = [{"n": i, "s": str(i)} for i in range(16384)]

    def touch_other_memory() -> int:
        other[::64] = other[::64]
        total = 0
        for item in others:
            total += item["n"]
        return total

    def cold(fn_per_stage):
        def run() -> float:
            spent = 0.0
            for si in range(3):
                touch_other_memory()
                started = time.thread_time()
                fn_per_stage(si)
                spent += time.thread_time() - started
            return spent
        return run

    def py_stage(si):
        p = payloads[si]
        for instance in instances:
            instance.react(p, fuel, True)

    def native_stage(g):
        run, apiref = runners[g], apirefs[g]
        return lambda si: run(apiref, 3, arrref, payloads[si], len(payloads[si]), fuel, fuelref, resref)

    def active_stage(si):
        active.react_sync_now(built[si])

    def product_stage(si):
        # the same as product_stages for one stage
        payload, etype = payloads[si], stage_types[si]
        subs = sync_subs[etype]
        taken = []
        for k, (_name, pool, host) in enumerate(subs):
            if host._health.retry_at_monotonic:
                host._health.check()
            inst = pool.acquire()
            taken.append(inst)
            stage_arr[k] = callrefs[id(inst)]
        started = perf()
        done = run_pc(api_pc, len(subs), stage_arrref, payload, len(payload), fuel, fuelref, resref)
        seconds = (perf() - started) / len(subs)
        for k in range(done):
            name, pool, host = subs[k]
            taken[k].ok_sync += 1
            pool.release(taken[k])
            reactions.record(name, etype, "sync", "continue", seconds, fuel_used[k])

    # rows that use pools need the held instances back in the pools; the others use `instances` directly
    rows = [
        ("9 x PluginInstance.react (Python path, bare)", "held", py_native_calls),
        ("3 x run_stage, GIL kept (PyDLL)", "held", stage_fn("keep")),
        ("3 x run_stage, GIL released per Wasm call", "held", stage_fn("per-call")),
        ("3 x run_stage, GIL released once around the stage (CDLL)", "held", stage_fn("whole")),
        ("3 x run_stage with n=0 (the ctypes call alone)", "held", empty_stages),
        ("3 x run_stage as a CPython extension, GIL released per Wasm call", "held", ext_stages),
        ("3 x run_stage as a CPython extension with n=0 (the call alone)", "held", ext_empty_stages),
        ("3 x ActivePluginSet.react_sync_now (Python path, whole stage)", "pool", plugin_stages),
        ("3 x native stage + pool/health only (no metrics record, no timing)", "pool", product_stages_no_metrics),
        ("3 x native stage + its Python machinery (pool, health, metrics)", "pool", product_stages),
        ("extension stage + its Python machinery (pool, health, metrics)", "pool", ext_product_stages),
        ("extension stage as react_sync_now would be (+ stage object, payload encoding)", "pool", ext_full_stages),
        ("COLD 9 x PluginInstance.react", "held", cold(py_stage)),
        ("COLD 3 x run_stage, GIL released per Wasm call", "held", cold(native_stage("per-call"))),
        ("COLD 3 x run_stage, GIL kept", "held", cold(native_stage("keep"))),
        ("COLD 3 x run_stage as a CPython extension, GIL released per Wasm call", "held",
         cold(lambda si: ext_run(api_pc, 3, arrref, payloads[si], fuel, fuelref, resref))),
        ("COLD 3 x ActivePluginSet.react_sync_now", "pool", cold(active_stage)),
        ("COLD 3 x native stage + its Python machinery", "pool", cold(product_stage)),
        ("COLD extension stage as react_sync_now would be", "pool", cold(ext_full_stage)),
    ]
    best = {label: float("inf") for label, _, _ in rows}
    for _ in range(rounds):
        for label, needs, work in rows:
            if needs == "pool":
                for inst, pool in zip(instances, pools, strict=True):
                    pool.release(inst)
            if label.startswith("COLD"):
                n = events // 10
                spent = sum(work() for _ in range(n)) / n
            else:
                started = time.thread_time()
                for _ in range(events):
                    work()
                spent = (time.thread_time() - started) / events
            if needs == "pool":
                instances = [pool.acquire() for pool in pools]
                # the pools hand back the same instances (LIFO, nothing faulted)
                assert all(id(i) in callrefs for i in instances)
            best[label] = min(best[label], spent)
    for inst, pool in zip(instances, pools, strict=True):
        pool.release(inst)
    print(f"fastest of {rounds} interleaved rounds, {events} events per round (cold rows: {events // 10}),"
          f" thread CPU time per event (3 plugins x 3 sync stages)")
    print(f"{'row':<72} {'per event':>10} {'per reaction':>13}")
    for label, _, _ in rows:
        print(f"{label:<72} {best[label] * 1e6:>8.1f} µs {best[label] * 1e6 / 9:>10.2f} µs")


if __name__ == "__main__":
    main()
