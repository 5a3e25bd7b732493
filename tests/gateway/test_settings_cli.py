"""Flags, environment variables and their errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gateway.settings import Settings, SettingsError, parse_serve_args
from tests.gateway_fixtures import REPO_ROOT


def test_defaults() -> None:
    settings = parse_serve_args([], environ={})
    assert (settings.events_port, settings.config_port, settings.workers, settings.workers_backlog,
            settings.processes, settings.drain_timeout, settings.log_level, settings.log_format) == \
        (4000, 4001, 100, None, 1, 30.0, "info", "text")
    assert settings.store_url == "sqlite:.event-gateway/config.db"
    # The delivery queue (issue 14): SQLite next to the config store, in memory with a memory store.
    assert (settings.queue_url, settings.queue_max_events, settings.queue_fsync, settings.queue_lease) == \
        ("sqlite:.event-gateway/queue.db", 100_000, False, 60.0)
    assert parse_serve_args(["--dev", "--data-dir", "/d"], environ={}).queue_url == "sqlite:/d/queue.db"
    assert parse_serve_args(["--db", "memory"], environ={}).queue_url == "memory"
    assert parse_serve_args(["--db", "etcd://e:2379"], environ={}).queue_url == "sqlite:.event-gateway/queue.db"
    # Next to an explicit SQLite store: one queue per store file, never one in the working directory's data dir.
    assert parse_serve_args(["--db", "sqlite:/s/config.db"], environ={}).queue_url == "sqlite:/s/queue.db"
    assert parse_serve_args(["--db", "sqlite:/s/c.db"], environ={}).queue_url == "sqlite:/s/c-queue.db"


def test_queue_flags_and_environment() -> None:
    settings = parse_serve_args(["--queue", "nats://a:4222,b:4223", "--queue-max-events", "5", "--queue-fsync",
                                 "--queue-lease", "90"], environ={})
    assert (settings.queue_url, settings.queue_max_events, settings.queue_fsync, settings.queue_lease) == \
        ("nats://a:4222,b:4223", 5, True, 90.0)
    environ = {"EVENT_GATEWAY_QUEUE": "memory", "EVENT_GATEWAY_QUEUE_MAX_EVENTS": "7",
               "EVENT_GATEWAY_QUEUE_FSYNC": "true", "EVENT_GATEWAY_QUEUE_LEASE": "2.5"}
    settings = parse_serve_args([], environ=environ)
    assert (settings.queue_url, settings.queue_max_events, settings.queue_fsync, settings.queue_lease) == \
        ("memory", 7, True, 2.5)
    assert parse_serve_args(["--queue", "sqlite:q.db"], environ=environ).queue_url == "sqlite:q.db"
    assert "secret" not in repr(parse_serve_args(["--queue", "nats://u:secret@h:4222"], environ={}))
    assert settings.max_function_response_bytes == 6 * 1024 * 1024  # Lambda's sync payload limit


def test_flags_win_over_environment_which_wins_over_defaults() -> None:
    environ = {"EVENT_GATEWAY_EVENTS_PORT": "8080", "EVENT_GATEWAY_CONFIG_PORT": "8081",
               "EVENT_GATEWAY_DEV": "true", "EVENT_GATEWAY_PLUGIN": "a.wat:b.wasm",
               "EVENT_GATEWAY_DB": "memory", "EVENT_GATEWAY_LOG_FORMAT": "json"}
    settings = parse_serve_args(["--config-port", "9001", "--data-dir", "/tmp/x"], environ=environ)
    assert (settings.events_port, settings.config_port, settings.dev, settings.plugins, settings.db,
            settings.log_format, settings.data_dir) == (8080, 9001, True, ("a.wat", "b.wasm"), "memory", "json", "/tmp/x")
    assert parse_serve_args(["--plugin", "x.wat", "--plugin", "y.wat"], environ=environ).plugins == ("x.wat", "y.wat")
    assert parse_serve_args(["--data-dir", "/d"], environ={}).store_url == "sqlite:/d/config.db"
    limit = {"EVENT_GATEWAY_MAX_FUNCTION_RESPONSE_BYTES": "1048576"}
    assert parse_serve_args([], environ=limit).max_function_response_bytes == 1048576
    assert parse_serve_args(["--max-function-response-bytes", "4096"],
                            environ=limit).max_function_response_bytes == 4096


@pytest.mark.parametrize(("argv", "environ", "fragment"), [
    ([], {"EVENT_GATEWAY_WORKERS": "many"}, "EVENT_GATEWAY_WORKERS='many'"),
    (["--workers", "0"], {}, "--workers 0"),
    (["--events-port", "70000"], {}, "--events-port 70000"),
    (["--events-tls-cert", "c.pem"], {}, "--events-tls-key"),
    (["--processes", "2", "--db", "memory"], {}, "shared store"),
    ([], {"EVENT_GATEWAY_LOG_LEVEL": "loud"}, "--log-level 'loud'"),
    (["--max-function-response-bytes", "0"], {}, "--max-function-response-bytes 0: must be at least 1"),
    ([], {"EVENT_GATEWAY_MAX_FUNCTION_RESPONSE_BYTES": "6MB"}, "EVENT_GATEWAY_MAX_FUNCTION_RESPONSE_BYTES='6MB'"),
    (["--queue", "redis://x"], {}, "--queue 'redis://x': expected memory, sqlite:PATH or nats://host:port"),
    (["--queue", "sqlite:"], {}, "--queue 'sqlite:': sqlite: needs a file path"),
    (["--queue", "nats://a:4222,"], {}, "--queue 'nats://a:4222,': an empty server"),
    (["--queue", "nats://a"], {}, "'a' is not host:port"),
    (["--queue", "nats://a:99999"], {}, "is not host:port"),
    (["--queue", "nats://u:hunter2@a"], {}, "--queue 'nats://u:***@a'"),
    (["--queue", "nats://s3cr3t-token@a"], {}, "--queue 'nats://***@a'"),
    (["--queue", "x" * 5000], {}, "longer than 4096 characters"),
    (["--queue-max-events", "0"], {}, "--queue-max-events 0: must be at least 1"),
    (["--queue-lease", "0"], {}, "--queue-lease 0.0: expected seconds"),
    (["--queue-lease", "nan"], {}, "--queue-lease nan"),
    ([], {"EVENT_GATEWAY_QUEUE_FSYNC": "maybe"}, "EVENT_GATEWAY_QUEUE_FSYNC='maybe'"),
])
def test_bad_values_are_named(argv: list[str], environ: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=None) as raised:
        parse_serve_args(argv, environ=environ)
    assert fragment in str(raised.value)
    assert "hunter2" not in str(raised.value) and "s3cr3t" not in str(raised.value)


def test_settings_are_immutable() -> None:
    with pytest.raises(AttributeError):
        Settings().workers = 3  # type: ignore[misc]


def test_cli_reports_bad_flags_and_a_taken_port() -> None:
    bad = subprocess.run([sys.executable, "-m", "gateway", "serve", "--workers", "0", "--db", "memory"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "--workers 0: must be at least 1" in bad.stderr

    import socket
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        clash = subprocess.run([sys.executable, "-m", "gateway", "serve", "--db", "memory", "--events-port",
                                str(port), "--config-port", "0"], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=60, check=False)
    assert clash.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in clash.stderr


def test_cli_help_lists_every_flag() -> None:
    help_text = subprocess.run([sys.executable, "-m", "gateway", "serve", "--help"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=60, check=False).stdout
    for flag in ("--host", "--events-host", "--events-port", "--config-port", "--events-tls-cert",
                 "--events-tls-key", "--config-tls-cert", "--config-tls-key", "--log-level", "--log-format",
                 "--workers", "--workers-backlog", "--processes", "--plugin", "--plugins-config", "--db",
                 "--dev", "--data-dir", "--drain-timeout", "--max-function-response-bytes", "--queue",
                 "--queue-max-events", "--queue-fsync", "--queue-lease"):
        assert flag in help_text, flag


def test_a_plugin_that_does_not_load_stops_start_up_with_a_json_log_line(tmp_path) -> None:
    import json

    missing = tmp_path / "missing.wat"
    failed = subprocess.run([sys.executable, "-m", "gateway", "serve", "--db", "memory", "--events-port", "0",
                             "--config-port", "0", "--log-format", "json", "--plugin", str(missing)],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert failed.returncode == 1
    lines = [json.loads(line) for line in failed.stderr.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] == "error"]
    assert errors and str(missing) in errors[-1]["msg"], failed.stderr
    assert {"time", "logger", "pid"} <= errors[-1].keys()
