"""Load WASI plugins, react, and leave the interpreter in one of several ways (tests/wasm_abi/test_close.py).

Usage: python teardown_script.py MODE MODULE... ; prints "done" on the way out. MODE says who frees the
plugins: `close` (explicitly), `with` (the context manager), `global` (a module global: freed during
interpreter finalization), `cycle` (a reference cycle: freed by the collector at finalization, if ever),
`thread_exit` (loaded on a thread that then calls sys.exit; kept by a global), `exit_while_reacting`
(sys.exit in the main thread while daemon threads are reacting).
"""

from __future__ import annotations

import sys
import threading
import time

from wasm_abi import EVENT_RECEIVED, Plugin, system_event

mode, paths = sys.argv[1], sys.argv[2:]
EVENT = system_event(EVENT_RECEIVED, {"event": {"specversion": "1.0", "type": "user.created", "source": "t",
                                                "id": "1", "data": {"name": "Ada"}},
                                      "path": "/", "headers": {"content-type": "application/json"}})


def load_all() -> list[Plugin]:
    plugins = []
    for path in paths:
        for _ in range(3):
            plugin = Plugin.from_file(path)
            plugin.react(EVENT)
            plugin.react(EVENT, "async")
            plugins.append(plugin)
    return plugins


KEEP: list[Plugin] = []
if mode == "close":
    for plugin in load_all():
        plugin.close()
elif mode == "with":
    for path in paths:
        with Plugin.from_file(path) as plugin:
            plugin.react(EVENT)
elif mode == "global":
    KEEP.extend(load_all())
elif mode == "cycle":
    class Cycle:
        pass
    cycle: object = Cycle()
    cycle.__dict__.update(self=cycle, plugins=load_all())
    del cycle
elif mode == "thread_exit":
    def work() -> None:
        KEEP.extend(load_all())
        sys.exit(0)
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
elif mode == "exit_while_reacting":
    plugins = load_all()
    def loop(plugin: Plugin) -> None:
        while True:
            try:
                plugin.react(EVENT, "async")
            except Exception:  # noqa: BLE001 - closed, quarantined: keep calling until exit
                pass
    for plugin in plugins:
        threading.Thread(target=loop, args=(plugin,), daemon=True).start()
    time.sleep(0.2)
    print("done", flush=True)
    sys.exit(0)
print("done")
