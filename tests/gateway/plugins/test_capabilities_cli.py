"""``event-gateway plugin check`` lists the capabilities a module imports; ``check`` and ``react`` take grants
(``--allow-kv``, ``--allow-http PREFIX``, ``--allow-metrics``). Real subprocesses, WAT plugins."""

from __future__ import annotations

import json
from pathlib import Path

import wasmtime

from tests.wat import plugin_wat
from tests.gateway.plugins.capability_plugins import COUNTER, HISTOGRAM, http_call, metric_calls, rate_limit
from tests.gateway.plugins.test_plugins_cli import run_cli

EVENT = {"specversion": "1.0", "type": "user.created", "source": "/t", "id": "1"}


def _files(tmp_path: Path, wasm: bytes) -> tuple[Path, Path]:
    module, event = tmp_path / "p.wasm", tmp_path / "event.json"
    module.write_bytes(wasm)
    event.write_text(json.dumps(EVENT))
    return module, event


def test_check_lists_capabilities_and_needs_the_grant(tmp_path: Path) -> None:
    module, _ = _files(tmp_path, rate_limit(5))
    refused = run_cli("check", module)
    assert refused.returncode == 1
    assert "capabilities\n  kv       plugins.toml: kv = true" in refused.stdout
    assert "not granted here (--allow-kv)" in refused.stdout
    assert ("module imports eventgateway.kv_incr, which needs the kv capability; grant kv = true to allow it "
            "(here: pass --allow-kv) [not_granted]") in refused.stderr
    granted = run_cli("check", module, "--allow-kv")
    assert granted.returncode == 0, granted.stderr
    assert "granted here" in granted.stdout and granted.stdout.rstrip().endswith("ok")
    module, _ = _files(tmp_path, metric_calls([]))  # imports metric, never calls it
    metered = run_cli("check", module, "--allow-metrics")
    assert metered.returncode == 0, metered.stderr
    assert "  metrics  plugins.toml: metrics = true" in metered.stdout and "metrics     (none recorded)" in metered.stdout
    module, _ = _files(tmp_path, bytes(wasmtime.wat2wasm(plugin_wat())))
    none = run_cli("check", module)
    assert none.returncode == 0 and "capabilities (none)" in none.stdout


def test_react_with_kv_and_metrics(tmp_path: Path) -> None:
    module, event = _files(tmp_path, rate_limit(0))
    result = run_cli("react", module, event, "--allow-kv")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["reaction"] == {"error": "over the limit of 0", "status": 429}
    module, event = _files(tmp_path, metric_calls([(COUNTER, "hits", {"route": "a"}, 2.0),
                                                   (HISTOGRAM, "latency", {}, 0.2)]))
    result = run_cli("react", module, event, "--allow-metrics")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert {"name": "hits", "kind": "counter", "labels": {"route": "a"}, "value": 2.0} in metrics
    [latency] = [m for m in metrics if m["name"] == "latency"]
    assert latency["value"]["count"] == 1 and latency["value"]["buckets"][-1] == 1
    refused = run_cli("react", module, event)
    assert refused.returncode == 1 and "(here: pass --allow-metrics)" in refused.stderr


def test_react_with_http_prefixes(tmp_path: Path) -> None:
    module, event = _files(tmp_path, http_call("http://127.0.0.1:9/verify", timeout_ms=500))
    refused = run_cli("react", module, event)
    assert refused.returncode == 1 and "(here: pass --allow-http PREFIX)" in refused.stderr
    # Granted another prefix: the call is denied, the plugin answers 502.
    denied = run_cli("react", module, event, "--allow-http", "http://127.0.0.1:9/other/")
    assert denied.returncode == 0, denied.stderr
    assert json.loads(denied.stdout)["reaction"]["status"] == 502
    assert "http://127.0.0.1:9/verify" in denied.stderr  # the denial is logged with the URL
    for bad, says in (("ftp://x/", "only http and https URLs are allowed"),
                      ("http://u@x/", "user information"),
                      ("http://" + "a" * 3000 + "/", "over 2048")):
        result = run_cli("react", module, event, "--allow-http", bad)
        assert result.returncode == 1 and "error: --allow-http: " in result.stderr and says in result.stderr
    many = [arg for i in range(101) for arg in ("--allow-http", f"http://h{i}.example/")]
    result = run_cli("react", module, event, *many)
    assert result.returncode == 1 and "101 prefixes, over the most of 100" in result.stderr
