"""cninfra-sidecar: the Ligato cn-infra infra plugins as a Kubernetes sidecar and a library.

Write a plugin::

    from sidecar import Agent, Plugin
    from sidecar.health.statuscheck import PluginState

    class MyPlugin(Plugin):
        name = "my-plugin"
        def __init__(self, statuscheck): self.deps = (statuscheck,); self.status = statuscheck
        async def init(self): self.status.register(self.name)
"""

from sidecar._version import __version__
from sidecar.agent import Agent, AgentError, AgentStartError, AgentStopError, Plugin

__all__ = ["Agent", "AgentError", "AgentStartError", "AgentStopError", "Plugin", "__version__"]
