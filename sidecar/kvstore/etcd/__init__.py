"""etcd: the connection plugin (aetcd underneath, imported only when enabled)."""

from .config import EtcdConfig, EtcdTLS
from .plugin import EtcdPlugin

__all__ = ["EtcdConfig", "EtcdPlugin", "EtcdTLS"]
