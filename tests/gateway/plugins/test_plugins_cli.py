"""``event-gateway plugin check | react | new``, run as a real subprocess: exit codes and messages for
good and broken modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.gateway_fixtures import REPO_ROOT
from tests.wat import SPIN_ON_SPIN, TRAP_ON_BOOM, example, kit_module, kit_plugin, write

CLI = [sys.executable, "-m", "gateway", "plugin"]  # the `event-gateway` console script's entry point


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([*CLI, *map(str, args)], check=False, capture_output=True, text=True, timeout=120,
                          cwd=cwd, env=env)


def test_check_good_module_prints_its_anatomy_and_passes(tmp_path: Path) -> None:
    module = write(tmp_path, "guard", example("guard"))
    done = run_cli("check", module, "--config", json.dumps({"denyTypes": ["user.created"], "status": 451}))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "abi         eventgateway_abi_v1" in out
    assert "react                  func (i32, i32) -> (i64)" in out
    assert "eventgateway.log" in out
    assert "memory      1 pages initial" in out
    assert "eventgateway.event.received (sync)" in out
    # The sample reaction ran the plugin's init config: the default sample event is a user.created.
    assert "reject 451: guard: event type user.created is denied" in out
    assert out.rstrip().endswith("ok")


def test_check_runs_a_sample_per_subscription_with_a_given_event(tmp_path: Path) -> None:
    module = write(tmp_path, "both", kit_plugin([("eventgateway.event.received", "sync"),
                                                  ("eventgateway.function.invoked", "async")]))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "order.placed", "id": "1", "source": "/shop"}))
    done = run_cli("check", module, "--event", event)
    assert done.returncode == 0, done.stderr
    assert "sample eventgateway.event.received (sync): continue" in done.stdout
    assert "sample eventgateway.function.invoked (async): continue" in done.stdout


def test_check_fails_on_a_module_without_the_abi_marker(tmp_path: Path) -> None:
    module = tmp_path / "plain.wat"
    module.write_text('(module (memory (export "memory") 1) (func (export "react") (param i32 i32) (result i64) '
                      "(i64.const 0)))")
    done = run_cli("check", module)
    assert done.returncode == 1
    assert "eventgateway_abi_v1" in done.stderr and "[abi_version]" in done.stderr


def test_check_fails_on_bytes_that_are_not_wasm(tmp_path: Path) -> None:
    module = tmp_path / "junk.wasm"
    module.write_bytes(b"\x00asm\x01\x00\x00\x00\xff\xff")
    done = run_cli("check", module)
    assert done.returncode == 1
    assert "not a valid WebAssembly module" in done.stderr


def test_check_fails_when_init_rejects_the_config(tmp_path: Path) -> None:
    module = write(tmp_path, "guard", example("guard"))
    done = run_cli("check", module, "--config", json.dumps({"denyTypes": "not-a-list"}))
    assert done.returncode == 1
    assert "init rejected the configuration" in done.stderr


def test_check_fails_when_the_sample_reaction_traps(tmp_path: Path) -> None:
    module = write(tmp_path, "trap", kit_module(TRAP_ON_BOOM))
    event = tmp_path / "boom.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "boom", "id": "1", "source": "/x"}))
    done = run_cli("check", module, "--event", event)
    assert done.returncode == 1
    assert "FAULT [trap]" in done.stderr and "unreachable" in done.stderr
    assert "1 sample reaction(s) faulted" in done.stderr


def test_check_uses_the_real_limits(tmp_path: Path) -> None:
    module = write(tmp_path, "spin", kit_module(SPIN_ON_SPIN))
    event = tmp_path / "spin.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "spin", "id": "1", "source": "/x"}))
    done = run_cli("check", module, "--event", event, "--limits", json.dumps({"sync_fuel": 100_000}))
    assert done.returncode == 1
    assert "FAULT [out_of_fuel]" in done.stderr and "100000 fuel" in done.stderr


def test_check_refuses_bad_arguments(tmp_path: Path) -> None:
    module = write(tmp_path, "guard", example("guard"))
    assert "--config is not valid JSON" in run_cli("check", module, "--config", "{nope").stderr
    assert "limits.fuel: unknown limit" in run_cli("check", module, "--limits", '{"fuel": 1}').stderr
    missing = run_cli("check", tmp_path / "absent.wasm")
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_react_prints_reaction_fuel_and_time(tmp_path: Path) -> None:
    module = write(tmp_path, "guard", example("guard"))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "blocked", "id": "1", "source": "/x"}))
    done = run_cli("react", module, event, "--config", json.dumps({"denyTypes": ["blocked"], "status": 451}))
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["reaction"] == {"error": "guard: event type blocked is denied", "status": 451}
    assert printed["fuelUsed"] > 0 and printed["microseconds"] > 0


def test_react_shows_a_rewrite(tmp_path: Path) -> None:
    replacement = {"specversion": "1.0", "type": "rewritten", "id": "r1", "source": "/plugin"}
    module = write(tmp_path, "rewriter", kit_plugin(reaction={"event": replacement}))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "original", "id": "1", "source": "/x"}))
    done = run_cli("react", module, event)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reaction"] == {"event": replacement}


def test_react_exits_non_zero_on_a_fault(tmp_path: Path) -> None:
    module = write(tmp_path, "trap", kit_module(TRAP_ON_BOOM))
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"specversion": "1.0", "type": "boom", "id": "1", "source": "/x"}))
    done = run_cli("react", module, event)
    assert done.returncode == 1 and "[trap]" in done.stderr


def test_new_wat_scaffold_passes_check(tmp_path: Path) -> None:
    done = run_cli("new", "hello", "--lang", "wat", "--dir", tmp_path)
    assert done.returncode == 0, done.stderr
    module = tmp_path / "hello" / "hello.wat"
    assert module.is_file() and (tmp_path / "hello" / "README.md").is_file()
    checked = run_cli("check", module)
    assert checked.returncode == 0, checked.stderr
    assert "hello: received event user.created" in checked.stderr  # the plugin's own log line
    again = run_cli("new", "hello", "--lang", "wat", "--dir", tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.toolchains
@pytest.mark.slow
@pytest.mark.parametrize("lang", ["c", "rust", "go", "zig", "assemblyscript"])
def test_new_compiled_scaffold_builds_and_passes_check(tmp_path: Path, lang: str) -> None:
    """Each compiled language's scaffold builds with its kit's toolchain (installed by `just toolchains`;
    AssemblyScript uses the asc that it installs in the kit instead of fetching one from npm); a missing
    compiler fails this test, it is never skipped."""
    done = run_cli("new", f"hello-{lang}", "--lang", lang, "--dir", tmp_path)
    assert done.returncode == 0, done.stderr
    project = tmp_path / f"hello-{lang}"
    asc = REPO_ROOT / "wasm_abi" / "pdk" / "assemblyscript" / "node_modules" / "assemblyscript" / "bin" / "asc.js"
    built = subprocess.run([str(project / "build.sh")], check=False, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "ASC": str(asc)})
    assert built.returncode == 0, built.stdout + built.stderr
    checked = run_cli("check", project / f"hello-{lang}.wasm")
    assert checked.returncode == 0, checked.stderr


def test_command_line_mistakes_exit_with_status_2_and_the_usage() -> None:
    missing = run_cli("check")
    assert missing.returncode == 2 and "the following arguments are required: module" in missing.stderr
    unknown = run_cli("inspect", "x.wasm")
    assert unknown.returncode == 2 and "invalid choice: 'inspect'" in unknown.stderr
    no_lang = run_cli("new", "x1")
    assert no_lang.returncode == 2 and "--lang" in no_lang.stderr


def test_new_refuses_unknown_language_and_bad_name(tmp_path: Path) -> None:
    unknown = run_cli("new", "x1", "--lang", "cobol", "--dir", tmp_path)
    assert unknown.returncode == 1 and "available: wat, c, rust, go, zig, assemblyscript" in unknown.stderr
    bad = run_cli("new", "no/slashes", "--lang", "wat", "--dir", tmp_path)
    assert bad.returncode == 1 and "plugin name must match" in bad.stderr


def test_check_takes_a_system_event_as_it_is(tmp_path: Path) -> None:
    """--event may be a whole system event (what `react` takes too): subscriptions to its type get it as it
    is, the others a sample around the incoming event it carries."""
    module = write(tmp_path, "guard", example("guard"))
    event = tmp_path / "received.json"
    event.write_text(json.dumps({
        "specversion": "1.0", "type": "eventgateway.event.received", "id": "s1", "source": "/gw",
        "data": {"path": "/", "headers": {}, "event": {"specversion": "1.0", "type": "blocked", "id": "1",
                                                        "source": "/x"}}}))
    done = run_cli("check", module, "--event", event, "--config", json.dumps({"denyTypes": ["blocked"]}))
    assert done.returncode == 0, done.stderr
    assert "reject 403: guard: event type blocked is denied" in done.stdout
