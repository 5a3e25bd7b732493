"""Configuration storage: the interface (:mod:`.base`), its backends and the in-memory view.

:func:`open_store` turns a ``--db`` URL into a backend:

- ``memory``: nothing persisted (tests, throwaway runs);
- ``sqlite:PATH``: the embedded default, persisted, shareable by several processes;
- ``etcd://host:port[,host:port...]``: a cluster of gateways sharing one configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.store.base import Store

__all__ = ["Store", "open_store"]


def open_store(url: str, **etcd_options: Any) -> Store:
    """Build (not yet open) the store a ``--db`` URL names; a clear ``ValueError`` for anything else."""
    if url == "memory":
        from gateway.store.memory import MemoryStore
        return MemoryStore()
    if url.startswith("sqlite:"):
        path = url[len("sqlite:"):]
        path = path.removeprefix("//")  # tolerate sqlite:///abs/path
        if not path:
            raise ValueError(f"--db {url!r}: no file; expected sqlite:PATH, e.g. sqlite:.event-gateway/config.db")
        from gateway.store.sqlite import SQLiteStore
        return SQLiteStore(Path(path))
    if url.startswith("etcd://"):
        from gateway.store.etcd import EtcdStore, parse_etcd_url
        return EtcdStore(parse_etcd_url(url, **etcd_options))
    raise ValueError(f"--db {url!r}: unknown store; use memory, sqlite:PATH or etcd://host:port[,host:port...]")
