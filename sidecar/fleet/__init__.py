"""fleet: every agent's published status, cached from etcd and indexed by state.

``GET /fleet`` lists the agents, ``GET /fleet?state=ERROR`` those in a state,
``GET /fleet/<label>`` one agent. Enabled by ``fleet.conf`` (with etcd).
"""

from .config import FleetConfig
from .plugin import FleetPlugin, decode_agent_status, parse_state

__all__ = ["FleetConfig", "FleetPlugin", "decode_agent_status", "parse_state"]
