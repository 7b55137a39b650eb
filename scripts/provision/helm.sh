#!/usr/bin/env bash
# Build helm from the helm.sh/helm/v3 Go module into $CNINFRA_CACHE/bin/helm
# (go-binary.sh: a no-op when that version is built). Prints the binary path last.
#
# HELM_VERSION overrides the pinned version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="${HELM_VERSION:-v3.22.0}"
# The Kubernetes minor version helm's go.mod builds against at $version; helm
# reports it as the default cluster version for `helm template`/`helm lint`.
k8s_minor="${HELM_K8S_MINOR:-37}"

# The same version stamps helm's own Makefile sets; without them
# `helm version` reports a bare "v3.22".
ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done

exec bash "$here/go-binary.sh" --ldflags "$ldflags" \
  helm helm.sh/helm/v3/cmd/helm "$version" -- version --short
