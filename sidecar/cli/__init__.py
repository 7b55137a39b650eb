"""The ``sidecar`` command (``sidecar.cli:main``): run the agent, and the clients of a running one.

    main.py      run, status, version; dispatches the others
    log.py       sidecar log list|set|reset      (the log manager's REST API)
    programs.py  sidecar programs list|start|... (the supervisor's REST API)
    inject.py    sidecar inject -f FILE|-         (sidecar.inject, offline)
    operator.py  sidecar operator                 (sidecar.operator: kopf, imported on run)
    _http.py     what the clients share: the sidecar's URL, the admin token, one request

Only ``run`` imports the server; the clients use the standard library so that
they answer quickly inside a pod.
"""

from .main import format_status, main

__all__ = ["format_status", "main"]
