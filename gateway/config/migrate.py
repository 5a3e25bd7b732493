"""One-time re-keying of subscription and CORS ids stored under the pre-issue-12 escaping rule.

Ids escape the path as Go's ``url.PathEscape`` does (``,`` -> ``%2C``, ``;`` -> ``%3B``). Earlier
versions kept ``,`` and ``;``, so a document whose path has either was stored under a different key
(and carries a different ``subscriptionId`` / ``corsId``). :func:`migrate_ids` runs when a gateway
starts, before its view loads: each such document is written under its current id, with the id field
updated, and the old key is deleted. It is idempotent and safe with several gateways on one store
(a key another gateway already wrote or deleted is skipped). Clients that kept an old-form id still
reach the document: the Config API turns any id into the current form first
(:func:`gateway.config.ids.canonical_id`).
"""

from __future__ import annotations

import logging

from gateway.config.ids import canonical_id
from gateway.store.base import AlreadyExists, Kind, NotFound, RevisionConflict, Store

__all__ = ["migrate_ids"]

log = logging.getLogger("gateway.config")

_ID_FIELDS = {Kind.SUBSCRIPTIONS: "subscriptionId", Kind.CORS: "corsId"}


async def migrate_ids(store: Store) -> int:
    """Re-key every subscription and CORS document stored under an old-form id; the number moved."""
    moved = 0
    for kind, field in _ID_FIELDS.items():
        for entry in await store.list(kind):
            current = canonical_id(kind.value, entry.id)
            if current == entry.id:
                continue
            try:
                await store.create(kind, entry.space, current, {**entry.value, field: current})
            except AlreadyExists:
                pass  # another gateway moved it first (or both forms were stored): keep the current one
            try:
                await store.delete(kind, entry.space, entry.id, entry.revision)
            except (NotFound, RevisionConflict):
                continue
            moved += 1
            log.info("re-keyed %s %r in space %r as %r (ids escape ',' and ';' as Go's url.PathEscape did)",
                     kind.value, entry.id, entry.space, current)
    return moved
