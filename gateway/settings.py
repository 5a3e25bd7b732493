"""Everything an operator can set, from flags or ``EVENT_GATEWAY_<NAME>`` environment variables.

One frozen :class:`Settings` object is built once by the CLI and handed to every component, so no
module reads the environment on its own and a test can start a gateway from a plain ``Settings(...)``.
The precedence is flag > environment > default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.common import MAX_PAYLOAD_BYTES
from gateway.events.parse import DEFAULT_MAX_BATCH_EVENTS
from gateway.queue.base import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_EVENTS

__all__ = ["DEFAULT_DATA_DIR", "Settings", "SettingsError", "add_serve_arguments", "settings_from_args"]

ENV_PREFIX = "EVENT_GATEWAY_"
DEFAULT_DATA_DIR = ".event-gateway"
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")
#: ``--loop``: the event loop Hypercorn serves on. ``auto``: uvloop where it imports, else asyncio's own.
LOOPS = ("auto", "uvloop", "asyncio")


class SettingsError(ValueError):
    """A flag or environment value is wrong; the message names it."""


@dataclass(frozen=True)
class Settings:
    #: Config API address. ``None``: loopback, with or without a config token (see gateway.http.auth).
    host: str | None = None
    #: Events API address.
    events_host: str = "127.0.0.1"
    events_port: int = 4000
    config_port: int = 4001
    events_tls_cert: str | None = None
    events_tls_key: str | None = None
    config_tls_cert: str | None = None
    config_tls_key: str | None = None
    #: Bearer token required on mutating Config API calls (``None``: open).
    config_token: str | None = None
    #: Bearer token required on every Events API call except CORS preflights (``None``: open).
    events_token: str | None = None
    log_level: str = "info"
    log_format: str = "text"
    #: The event loop of every process (``--loop``, one of :data:`LOOPS`; see gateway.server.event_loop).
    loop: str = "auto"
    #: Async deliveries made at once by one process (upstream's "workers"): the delivery worker leases up
    #: to this many from the queue.
    workers: int = 100
    #: No longer used (the in-memory backlog it bounded is gone: ``--queue-max-events`` bounds the queue);
    #: accepted so existing command lines keep working, with a warning at start.
    workers_backlog: int | None = None
    #: Where accepted async deliveries wait (issue 14): ``memory`` | ``sqlite:PATH`` |
    #: ``nats://host:port[,host:port]``. ``None``: see :attr:`queue_url`.
    queue: str | None = field(default=None, repr=False)  # a NATS URL may hold a password
    #: Deliveries the queue holds before new async events get 503.
    queue_max_events: int = DEFAULT_MAX_EVENTS
    #: SQLite queue: fsync the WAL at every commit (``synchronous=FULL``): survives a power loss too.
    queue_fsync: bool = False
    #: Seconds a leased delivery is hidden from other workers; longer than the slowest function's timeout.
    queue_lease: float = DEFAULT_LEASE_SECONDS
    #: Hypercorn worker processes sharing the listening sockets and the store.
    processes: int = 1
    #: Wasm plugins given with ``--plugin`` (repeatable), in order.
    plugins: tuple[str, ...] = ()
    plugins_config: str | None = None
    #: ``memory`` | ``sqlite:PATH`` | ``etcd://host:port[,...]``. ``None``: SQLite in ``data_dir``.
    db: str | None = None
    dev: bool = False
    data_dir: str = DEFAULT_DATA_DIR
    #: Seconds a shutdown waits for in-flight requests and queued deliveries.
    drain_timeout: float = 30.0
    #: The largest response body an http function may answer; past it the call fails (so one function
    #: answering gigabytes cannot exhaust the gateway's memory). 6 MiB is Lambda's sync payload limit.
    max_function_response_bytes: int = MAX_PAYLOAD_BYTES
    #: Most events one ``application/cloudevents-batch+json`` request may carry; a larger batch is refused
    #: (400) naming this limit. Each event of a batch passes the plugins and is queued on its own.
    max_batch_events: int = DEFAULT_MAX_BATCH_EVENTS
    #: Budget of every loaded plugin together (see gateway.plugins.manager.PluginBudget): the memory their
    #: instance pools may reserve (sum of pool_size x max_memory_bytes; default: this machine's memory),
    #: their instances (sum of pool_size) and threads (each plugin's sync threads, pool_size, plus the
    #: shared async threads). A plugin that would go over is not loaded (failed, naming the budget).
    plugins_max_memory: int = field(default_factory=lambda: _physical_memory())
    plugins_max_instances: int = 256
    plugins_max_threads: int = 512
    #: Where plugins granted ``kv`` keep their keys: ``None``/``memory`` (per process) or
    #: ``redis://host:port/db`` / ``rediss://...`` / ``unix:///path`` (shared; see gateway.plugins.kv_backend).
    plugin_kv: str | None = field(default=None, repr=False)  # may hold a password
    #: Traces (issue 15): the OTLP/HTTP collector's base URL (spans go to ``<URL>/v1/traces``); ``None``: only
    #: the standard ``OTEL_*`` variables turn tracing on (see gateway.observe.tracing).
    otel_endpoint: str | None = field(default=None, repr=False)  # may hold a password
    #: Extra options of the store backend (etcd TLS files, user, password), by keyword.
    db_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.log_level not in LOG_LEVELS:
            raise SettingsError(f"--log-level {self.log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"--log-format {self.log_format!r}: expected one of {', '.join(LOG_FORMATS)}")
        if self.loop not in LOOPS:
            raise SettingsError(f"--loop {self.loop!r}: expected one of {', '.join(LOOPS)}")
        for name in ("events_port", "config_port"):
            port = getattr(self, name)
            if not 0 <= port < 65536:
                raise SettingsError(f"--{name.replace('_', '-')} {port}: expected a port 0-65535")
        for name, minimum in (("workers", 1), ("processes", 1), ("queue_max_events", 1),
                              ("max_function_response_bytes", 1), ("max_batch_events", 1),
                              ("plugins_max_memory", 1), ("plugins_max_instances", 1), ("plugins_max_threads", 1)):
            if getattr(self, name) < minimum:
                raise SettingsError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least {minimum}")
        if not self.queue_lease > 0 or self.queue_lease > 86400:
            raise SettingsError(f"--queue-lease {self.queue_lease}: expected seconds, more than 0 and at most 86400")
        from gateway.queue.open import QueueConfigError, check_queue_url
        try:
            check_queue_url(self.queue)
        except QueueConfigError as exc:
            raise SettingsError(str(exc)) from None
        if self.drain_timeout < 0:
            raise SettingsError(f"--drain-timeout {self.drain_timeout}: must not be negative")
        for api in ("events", "config"):
            cert, key = getattr(self, f"{api}_tls_cert"), getattr(self, f"{api}_tls_key")
            if (cert is None) != (key is None):
                raise SettingsError(f"--{api}-tls-cert and --{api}-tls-key go together")
        from gateway.plugins.kv_backend import KvBackendError, check_kv_url
        try:
            check_kv_url(self.plugin_kv)
        except KvBackendError as exc:
            raise SettingsError(str(exc)) from None
        if self.otel_endpoint is not None and not self.otel_endpoint.startswith(("http://", "https://")):
            raise SettingsError(f"--otel-endpoint {self.otel_endpoint.split('@')[-1]!r}: expected the http(s) URL of "
                                "an OTLP/HTTP collector, e.g. http://localhost:4318")
        if self.processes > 1 and self.store_url == "memory":
            raise SettingsError("--processes > 1 needs a shared store (sqlite:PATH or etcd://...), not memory")

    @property
    def store_url(self) -> str:
        """The ``--db`` URL, defaulting to the SQLite file in the data dir (also what ``--dev`` uses)."""
        return self.db or f"sqlite:{Path(self.data_dir) / 'config.db'}"

    @property
    def queue_url(self) -> str:
        """The ``--queue`` URL. Default: a SQLite file next to the SQLite config store -- ``queue.db``
        beside ``config.db`` (so ``sqlite:<data-dir>/queue.db`` for the default store and ``--dev``),
        ``<name>-queue.db`` beside any other store file; ``sqlite:<data-dir>/queue.db`` with an etcd store;
        and ``memory`` with ``--db memory`` (a gateway told to keep its configuration in memory leaves no
        file behind)."""
        if self.queue is not None:
            return self.queue
        store = self.store_url
        if store == "memory":
            return "memory"
        if store.startswith("sqlite:"):
            path = Path(store[len("sqlite:"):])
            name = "queue.db" if path.name == "config.db" else f"{path.stem}-queue.db"
            return f"sqlite:{path.with_name(name)}"
        from gateway.queue.open import default_queue_url
        return default_queue_url(self.data_dir)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _physical_memory() -> int:
    """This machine's physical memory in bytes (8 GiB when the platform cannot say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 8 * 1024 ** 3


def _env(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(ENV_PREFIX + name.upper().replace("-", "_"))


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve`` flags. Defaults are ``None`` so an unset flag falls back to the environment."""
    a = parser.add_argument
    a("--host", "--config-host", dest="host", help="Config API address (default 127.0.0.1, also with "
      "--config-token: its reads stay open)")
    a("--events-host", help="Events API address (default 127.0.0.1)")
    a("--events-port", type=int, help="Events API port (default 4000; 0 picks a free one)")
    a("--config-port", type=int, help="Config API port (default 4001; 0 picks a free one)")
    a("--events-tls-cert", help="PEM certificate for the Events API (with --events-tls-key)")
    a("--events-tls-key", help="PEM private key for the Events API")
    a("--config-tls-cert", help="PEM certificate for the Config API (with --config-tls-key)")
    a("--config-tls-key", help="PEM private key for the Config API")
    a("--config-token", help="bearer token required on Config API writes")
    a("--events-token", help="bearer token required on Events API requests")
    a("--log-level", choices=LOG_LEVELS, help="default info")
    a("--log-format", choices=LOG_FORMATS, help="default text")
    a("--loop", choices=LOOPS, help="event loop: auto (default: uvloop where it is installed, else asyncio's), "
      "uvloop (fail to start without it) or asyncio")
    a("--workers", type=int, help="async deliveries made at once by each process (default 100)")
    a("--workers-backlog", type=int, help="no longer used (accepted async events wait in the queue, bounded "
      "by --queue-max-events); accepted so old command lines still start, with a warning")
    a("--queue", metavar="URL", help="where accepted async events wait: sqlite:PATH (durable; default "
      "sqlite:<data-dir>/queue.db, memory with --db memory), memory (fastest, lost with the process) or "
      "nats://host:port[,host:port] (JetStream, shared by a cluster)")
    a("--queue-max-events", type=int, metavar="N",
      help=f"deliveries the queue holds before new async events get 503 (default {DEFAULT_MAX_EVENTS})")
    a("--queue-fsync", action="store_const", const=True,
      help="sqlite queue: fsync every commit (survives a power loss, slower; default: survives a killed process)")
    a("--queue-lease", type=float, metavar="SECONDS",
      help=f"how long a delivery being made is hidden from other workers, renewed every third of it while "
           f"its call runs: how long a dead worker's deliveries wait (default {DEFAULT_LEASE_SECONDS:g})")
    a("--processes", type=int, help="Hypercorn worker processes sharing one store (default 1)")
    a("--plugin", dest="plugins", action="append", metavar="PATH",
      help="load a Wasm plugin (.wasm or .wat); repeatable, run in the order given")
    a("--plugins-config", metavar="FILE", help="plugins.toml with plugins and their settings")
    a("--db", metavar="URL", help="memory | sqlite:PATH | etcd://host:port[,host:port] "
      "(default sqlite:<data-dir>/config.db)")
    a("--db-ca", metavar="FILE", help="etcd: PEM CA bundle that signed the server certificates (turns TLS on)")
    a("--db-cert", metavar="FILE", help="etcd: PEM client certificate (with --db-key)")
    a("--db-key", metavar="FILE", help="etcd: PEM private key of --db-cert")
    a("--db-user", help="etcd: user name (with --db-password)")
    a("--db-password", help="etcd: password of --db-user")
    a("--plugin-kv", metavar="URL", help="where plugins granted kv keep their keys: memory (default; each "
      "process its own) or redis://[:password@]host:port/db, rediss://... (TLS), unix:///path/redis.sock (shared)")
    a("--dev", action="store_const", const=True, help="development mode: embedded SQLite store in the data dir")
    a("--data-dir", help=f"directory of the embedded store (default {DEFAULT_DATA_DIR})")
    a("--drain-timeout", type=float, help="seconds to finish in-flight work on shutdown (default 30)")
    a("--max-function-response-bytes", type=int, metavar="BYTES",
      help="largest response body an http function may answer; a bigger one fails the call "
           f"(default {MAX_PAYLOAD_BYTES}, {MAX_PAYLOAD_BYTES // (1024 * 1024)} MiB)")

    a("--max-batch-events", type=int, metavar="N",
      help="most events in one application/cloudevents-batch+json request; a larger batch is refused with 400 "
           f"(default {DEFAULT_MAX_BATCH_EVENTS})")

    a("--otel-endpoint", metavar="URL",
      help="send traces (OpenTelemetry, OTLP/HTTP) to this collector, e.g. http://localhost:4318 (spans go to "
           "URL/v1/traces); the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_SAMPLER, ...) "
           "work too; default: no traces")
    a("--plugins-max-memory", type=int, metavar="BYTES",
      help="memory all plugins together may reserve: the sum of pool_size x max_memory_bytes over loaded plugins "
           "(default: this machine's physical memory)")
    a("--plugins-max-instances", type=int, metavar="N",
      help="instances all plugins together may keep: the sum of their pool_size (default 256)")
    a("--plugins-max-threads", type=int, metavar="N",
      help="threads all plugins together may use: each plugin's sync threads (pool_size) plus the shared async "
           "threads (default 512)")


_CONVERTERS: dict[str, Any] = {
    "events_port": int, "config_port": int, "workers": int, "workers_backlog": int, "processes": int,
    "drain_timeout": float, "dev": _bool, "queue_max_events": int, "queue_fsync": _bool, "queue_lease": float, "max_function_response_bytes": int, "max_batch_events": int,
    "plugins_max_memory": int, "plugins_max_instances": int, "plugins_max_threads": int,
}


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Merge parsed flags over ``EVENT_GATEWAY_*`` variables over defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.name == "db_options":
            continue
        flag = getattr(args, f.name, None)
        if flag is not None:
            values[f.name] = tuple(flag) if f.name == "plugins" else flag
            continue
        text = _env(environ, f.name if f.name != "plugins" else "plugin")
        if text is None:
            continue
        try:
            if f.name == "plugins":
                # EVENT_GATEWAY_PLUGIN holds one path or several separated by os.pathsep.
                values[f.name] = tuple(p for p in text.split(os.pathsep) if p)
            else:
                values[f.name] = _CONVERTERS.get(f.name, str)(text)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise SettingsError(f"{ENV_PREFIX}{f.name.upper()}={text!r}: {exc}") from None
    values["db_options"] = _db_options(args, environ)
    return Settings(**values)


#: ``--db-*`` flag -> keyword of the etcd store's options (:class:`gateway.store.etcd.EtcdOptions`).
_DB_OPTIONS = {"db_ca": "ca_file", "db_cert": "cert_file", "db_key": "key_file", "db_user": "user",
               "db_password": "password"}


def _db_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The ``--db-*`` flags (or ``EVENT_GATEWAY_DB_*``), checked by the store that uses them."""
    options: dict[str, str] = {}
    for name, option in _DB_OPTIONS.items():
        value = getattr(args, name, None)
        if value is None:
            value = _env(environ, name)
        if value is not None:
            options[option] = value
    return options


def parse_serve_args(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """For tests and embedding: ``serve`` flags -> :class:`Settings`."""
    parser = argparse.ArgumentParser(prog="event-gateway serve")
    add_serve_arguments(parser)
    return settings_from_args(parser.parse_args(list(argv)), environ)
