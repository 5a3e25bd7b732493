"""How API-managed plugins are kept in the configuration store (``Kind.PLUGINS``).

Two kinds of document, so that changing a plugin's settings never rewrites its module and a module
is never bigger than one store value may be (etcd refuses requests over 1.5 MiB by default; Go
plugins are 2-3 MiB):

- ``(PLUGINS, "plugins", NAME)`` — the plugin: ``{"type": "plugin", "name", "sha256", "size",
  "chunks", "settings": {...}, "createdAt", "updatedAt"}``;
- ``(PLUGINS, "modules", "<sha256>-<i>")`` — chunk ``i`` of a module, content-addressed:
  ``{"type": "module", "sha256", "index", "data": <base64 of up to 512 KiB>}``.

Writes go chunks first, plugin document last, so any gateway that sees a plugin document can already
find its module. A module's chunks are deleted with the last plugin document that uses them. Every
gateway reads both kinds from its :class:`~gateway.config.view.ConfigView` (``view.plugins()``), so a
reload never touches the store.
"""

from __future__ import annotations

import base64
import hashlib
from gateway.common import rfc3339
from typing import Any

from gateway.store.base import AlreadyExists, Kind, NotFound, Store

from .plugin_settings import PluginSettings

__all__ = [
    "CHUNK_BYTES",
    "MODULES_SPACE",
    "PLUGINS_SPACE",
    "ModuleMissing",
    "assemble_module",
    "delete_plugin",
    "plugin_documents",
    "read_plugin",
    "write_plugin",
]

PLUGINS_SPACE = "plugins"
MODULES_SPACE = "modules"
CHUNK_BYTES = 512 * 1024


class ModuleMissing(LookupError):
    """A plugin document names a module whose chunks are not (or not all) in the store."""


def _now() -> str:
    return rfc3339()


def chunk_id(sha256: str, index: int) -> str:
    return f"{sha256}-{index}"


def plugin_documents(documents: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The plugin documents among ``view.plugins()`` (which also holds the module chunks), by name."""
    return {doc["name"]: doc for doc in documents.values()
            if isinstance(doc, dict) and doc.get("type") == "plugin" and isinstance(doc.get("name"), str)}


def assemble_module(documents: dict[str, dict[str, Any]], plugin: dict[str, Any]) -> bytes:
    """The module bytes of ``plugin``, joined from its chunks and checked against its sha256."""
    sha256, count = plugin.get("sha256"), plugin.get("chunks")
    if not isinstance(sha256, str) or not isinstance(count, int) or count < 1:
        raise ModuleMissing(f"plugin document {plugin.get('name')!r} has no valid sha256/chunks")
    parts: list[bytes] = []
    for index in range(count):
        chunk = documents.get(chunk_id(sha256, index))
        if chunk is None or not isinstance(chunk.get("data"), str):
            raise ModuleMissing(f"chunk {index + 1}/{count} of module {sha256} is not in the store")
        parts.append(base64.b64decode(chunk["data"]))
    wasm = b"".join(parts)
    if hashlib.sha256(wasm).hexdigest() != sha256:
        raise ModuleMissing(f"the stored chunks of module {sha256} do not hash to it (corrupted store?)")
    return wasm


async def write_plugin(
    store: Store,
    name: str,
    settings: PluginSettings,
    wasm: bytes | None,
    existing: dict[str, Any] | None,
    expected_revision: int | None = None,
) -> int:
    """Create or replace a plugin (``wasm=None`` keeps the current module). Returns the store revision
    of the plugin document, which every gateway reloads at.

    ``expected_revision`` is the revision ``existing`` was read at: the update then applies only if
    nobody wrote the plugin since (else :class:`~gateway.store.base.RevisionConflict`), so a settings
    change derived from ``existing`` (enable, disable, a new module keeping the settings) can never
    silently undo another gateway's write."""
    chunk_values: list[dict[str, Any]] = []
    if wasm is not None:
        sha256 = hashlib.sha256(wasm).hexdigest()
        chunks = [wasm[i:i + CHUNK_BYTES] for i in range(0, len(wasm), CHUNK_BYTES)] or [b""]
        chunk_values = [{"type": "module", "sha256": sha256, "index": index,
                         "data": base64.b64encode(data).decode("ascii")} for index, data in enumerate(chunks)]
        await _put_chunks(store, chunk_values)
        size, count = len(wasm), len(chunks)
    else:
        if existing is None:
            raise ValueError("a new plugin needs a module")
        sha256, size, count = existing["sha256"], existing["size"], existing["chunks"]
    now = _now()
    document = {
        "type": "plugin", "name": name, "sha256": sha256, "size": size, "chunks": count,
        "settings": settings.as_document(),
        "createdAt": existing.get("createdAt", now) if existing else now, "updatedAt": now,
    }
    if existing is None:
        try:
            entry = await store.create(Kind.PLUGINS, PLUGINS_SPACE, name, document)
        except AlreadyExists:
            # Another request created this name first: do not leave the chunks just written behind.
            await _collect_module(store, document)
            raise
    else:
        entry = await store.update(Kind.PLUGINS, PLUGINS_SPACE, name, document, expected_revision)
    if chunk_values:
        # Chunks that already existed may have been collected by a concurrent delete of their last other
        # user between our write of them and our plugin document: put back any that are gone.
        await _put_chunks(store, chunk_values, only_missing=True)
    if existing is not None and existing.get("sha256") != sha256:
        await _collect_module(store, existing)
    return entry.revision


async def read_plugin(store: Store, name: str) -> tuple[dict[str, Any], int] | None:
    """The stored plugin document and its revision, read from the store itself (not a view, which may
    lag behind another gateway's write): the base of a revision-checked update."""
    entry = await store.get(Kind.PLUGINS, PLUGINS_SPACE, name)
    return (entry.value, entry.revision) if entry is not None else None


async def delete_plugin(store: Store, existing: dict[str, Any]) -> None:
    """Delete a plugin document, then its module if no other plugin uses it."""
    await store.delete(Kind.PLUGINS, PLUGINS_SPACE, existing["name"])
    await _collect_module(store, existing)


async def _put_chunks(store: Store, values: list[dict[str, Any]], *, only_missing: bool = False) -> None:
    for value in values:
        key = chunk_id(value["sha256"], value["index"])
        if only_missing and await store.get(Kind.PLUGINS, MODULES_SPACE, key) is not None:
            continue
        try:
            await store.create(Kind.PLUGINS, MODULES_SPACE, key, value)
        except AlreadyExists:
            pass  # content-addressed: the same bytes are already there


async def _users(store: Store, sha256: Any) -> bool:
    return any(e.value.get("sha256") == sha256 for e in await store.list(Kind.PLUGINS, PLUGINS_SPACE))


async def _collect_module(store: Store, old: dict[str, Any]) -> None:
    """Delete a module's chunks once no plugin document uses it.

    The store has no multi-key transaction, so an upload of the same bytes under another name may race
    with this: it finds the chunks present (and skips writing them) just before they are deleted here.
    Both sides repair it: this re-lists the users after deleting and puts the chunks back if one appeared,
    and the upload re-checks its chunks after writing its plugin document. Whichever write came last, the
    chunks of every stored plugin end up present (a gateway that looked in between lists the plugin as
    failed until the chunks arrive, then reloads it)."""
    sha256 = old.get("sha256")
    if await _users(store, sha256):
        return
    removed: list[dict[str, Any]] = []
    for index in range(int(old.get("chunks") or 0)):
        key = chunk_id(str(sha256), index)
        entry = await store.get(Kind.PLUGINS, MODULES_SPACE, key)
        if entry is None:
            continue
        try:
            await store.delete(Kind.PLUGINS, MODULES_SPACE, key)
        except NotFound:
            continue
        removed.append(entry.value)
    if removed and await _users(store, sha256):
        await _put_chunks(store, removed)
