"""Fixtures of the packaging tests: ``kube_apiserver`` (a real kube-apiserver for the
server-side checks) is shared with the k8s tests, in tests/conftest.py."""
