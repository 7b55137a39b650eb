"""Errors of the k8s plugin.

    K8sError                 any problem of the k8s plugin
    ├── CredentialsError     no usable credentials, or the Pod cannot be named
    └── ApiError             the API server answered with an error status
        └── ApiUnavailableError   it could not be reached, timed out, or
                                  answered 429/5xx: worth retrying
"""

from __future__ import annotations


class K8sError(Exception):
    """Base of the k8s plugin's errors."""


class CredentialsError(K8sError):
    """No credentials to log in with, or the Pod's name or namespace is unknown."""


class ApiError(K8sError):
    """A request the API server refused; ``status`` is the HTTP status (0: no answer)."""

    def __init__(self, method: str, path: str, status: int, reason: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        where = f"{method} {path}"
        super().__init__(f"{where}: {status} {reason}" if status else f"{where}: {reason}")

    @property
    def retryable(self) -> bool:
        """Worth retrying as is: a conflict, or the server busy or away."""
        return self.status in (0, 409, 429) or self.status >= 500


class ApiUnavailableError(ApiError):
    """The API server did not answer (refused, reset, timed out) or said it is busy."""
