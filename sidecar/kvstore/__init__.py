"""Key-value stores: the protocol core plugins write through, and the etcd plugin."""

from .api import KVUnavailableError, LeasedWriter

__all__ = ["KVUnavailableError", "LeasedWriter"]
