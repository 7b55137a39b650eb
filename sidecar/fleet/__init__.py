"""fleet: every agent's published status, cached from etcd and indexed by state.

``GET /fleet`` lists the agents, ``GET /fleet?state=ERROR`` those in a state,
``GET /fleet/<label>`` one agent. Enabled by ``fleet.conf`` (with etcd). The
operator serves the same view (:class:`FleetView`) from the Pod annotations.
"""

from .config import FleetConfig
from .plugin import FleetPlugin
from .view import (
    AgentStatusDoc,
    FleetSource,
    FleetView,
    by_state,
    decode_agent_status,
    parse_state,
)

__all__ = ["AgentStatusDoc", "FleetConfig", "FleetPlugin", "FleetSource", "FleetView", "by_state",
           "decode_agent_status", "parse_state"]
