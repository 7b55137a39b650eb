#!/usr/bin/env bash
# Build kube-apiserver, and the node's commands (kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler, kubectl) for the single-node cluster of
# tests/e2e, from the k8s.io/kubernetes Go module into $CNINFRA_CACHE/bin, in ONE `go build` (they share
# most packages: about 3 minutes more than kube-apiserver alone). go-binary.sh: a
# no-op when the pinned module set is built. Prints kube-apiserver's path last.
#
# The pinned version lives in scripts/provision/kube/go.mod (with go.sum);
# the staging modules (k8s.io/api, k8s.io/apiserver, ...) are replaced there by
# their published v0.x tags, because upstream points them at ./staging paths
# that do not exist in the downloaded module.
#
# Cold build on 2 cores: about 12 minutes (module download + compile); ~460 MB.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The version is read from go.mod so that there is one place to bump it.
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kube/go.mod")"
if [[ -z "$version" ]]; then
  echo "kube.sh: cannot read the k8s.io/kubernetes version from $here/kube/go.mod" >&2
  exit 1
fi
# Any change to the pinned module set (not only the version) means a rebuild.
stamp="$version $(cat "$here/kube/go.mod" "$here/kube/go.sum" | sha256sum | cut -c1-16)"

# Fill in what `kube-apiserver --version` and the /version endpoint report
# (helm and clients read it); a plain `go build` would report v0.0.0-master.
minor="$(echo "$version" | cut -d. -f2)"
pkg="k8s.io/component-base/version"
ldflags="-s -w"
ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# client-go carries its own copy of the version variables.
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"

also=()
for cmd in kubelet kube-proxy kube-controller-manager kube-scheduler kubectl; do
  also+=(--also "k8s.io/kubernetes/cmd/$cmd")
done
exec bash "$here/go-binary.sh" --module "$here/kube" --stamp "$stamp" --ldflags "$ldflags" \
  "${also[@]}" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$version" -- --version
