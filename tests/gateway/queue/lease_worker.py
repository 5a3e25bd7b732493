"""A second *process* on a queue's storage, for the conformance suite:

    python -m tests.gateway.queue.lease_worker BACKEND LOCATION_JSON OPTIONS_JSON MODE

- ``drain``: lease (5 at a time, 10 ms apart) and ack until nothing came for 1 s; prints ``started``, then
  each acked id on a line;
- ``hold``: lease up to 100 (waiting up to 5 s), print their ids, then ``ready`` and sleep (to be killed).
"""

from __future__ import annotations

import asyncio
import json
import sys

from tests.gateway.queue.backends import BACKENDS


async def main(backend: str, location: dict, options: dict, mode: str) -> None:
    queue = BACKENDS[backend].open(location, **options)
    await queue.start()
    if mode == "drain":
        print("started", flush=True)
        while True:
            leased = await queue.lease(5, 1.0)
            if not leased:
                break
            for delivery in leased:
                await queue.ack(delivery)
                print(delivery.id, flush=True)
            await asyncio.sleep(0.01)
    elif mode == "hold":
        for delivery in await queue.lease(100, 5.0):
            print(delivery.id, flush=True)
        print("ready", flush=True)
        await asyncio.sleep(3600)
    await queue.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]))
