"""A stand-in sidecar for tests that kill it: runs a ProcessManager from a JSON spec.

    python -m tests.exec.manager_child '{"processes": [{"name": "a", "cmd": "/bin/sleep",
        "args": ["60"], "detach": false}], "subreaper": false, "reap": false}'

Prints ``{"pid": ..., "processes": {name: pid}}`` once everything has started, then
runs until it is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from sidecar.exec.processmanager import (
    Args,
    Detach,
    Option,
    ProcessManager,
    set_child_subreaper,
)


async def main(spec: dict[str, Any]) -> None:
    if spec.get("subreaper"):
        assert set_child_subreaper(True)
    async with ProcessManager(status_interval=0.05, reap_zombies=bool(spec.get("reap")),
                              reap_interval=0.05) as manager:
        started = {}
        for item in spec["processes"]:
            options: list[Option] = [Args(*item.get("args", []))]
            if item.get("detach"):
                options.append(Detach())
            process = await manager.new_process(item["name"], item["cmd"], *options)
            await process.start()
            started[item["name"]] = process.pid
        print(json.dumps({"pid": os.getpid(), "processes": started}), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
