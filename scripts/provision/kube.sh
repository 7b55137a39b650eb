#!/usr/bin/env bash
# Build kube-apiserver from the k8s.io/kubernetes Go module into
# $CACHE/bin/kube-apiserver. Idempotent: does nothing when the binary for the
# pinned version is already there. Prints the binary path on its last line.
#
# The pinned version lives in scripts/provision/kube/go.mod (with go.sum);
# the staging modules (k8s.io/api, k8s.io/apiserver, ...) are replaced there by
# their published v0.x tags, because upstream points them at ./staging paths
# that do not exist in the downloaded module.
#
# Cold build on 2 cores: several minutes (module download + compile).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
bin_dir="$CACHE/bin"
out="$bin_dir/kube-apiserver"

# The version is read from go.mod so that there is one place to bump it.
version="$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" {print $3}' "$here/kube/go.mod")"
if [[ -z "$version" ]]; then
  echo "kube.sh: cannot read the k8s.io/kubernetes version from $here/kube/go.mod" >&2
  exit 1
fi
stamp="$bin_dir/.kube-apiserver.version"
# Any change to the pinned module set (not only the version) means a rebuild.
want="$version $(cat "$here/kube/go.mod" "$here/kube/go.sum" | sha256sum | cut -c1-16)"

if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "kube.sh: kube-apiserver $version already built" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "kube.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin_dir"

# Build from a copy of the module in the cache, so that nothing the go command
# might write (go.sum updates) ever lands in the git work tree.
work="$CACHE/build/kube"
rm -rf "$work"
mkdir -p "$work"
cp "$here/kube/go.mod" "$here/kube/go.sum" "$here/kube/tools.go" "$work/"

# Fill in what `kube-apiserver --version` and the /version endpoint report
# (helm and clients read it); a plain `go build` would report v0.0.0-master.
minor="$(echo "$version" | cut -d. -f2)"
pkg="k8s.io/component-base/version"
ldflags="-s -w"
ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# client-go carries its own copy of the version variables.
ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"

echo "kube.sh: building kube-apiserver $version (this takes several minutes)" >&2
start=$(date +%s)
(
  cd "$work"
  # GOTOOLCHAIN=local: use the machine's Go, never download another one.
  # CGO off: a static binary, like the upstream release builds.
  GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod \
    go build -trimpath -ldflags "$ldflags" -o "$out.tmp" k8s.io/kubernetes/cmd/kube-apiserver
)
mv "$out.tmp" "$out"
echo "$want" > "$stamp"
echo "kube.sh: built in $(( $(date +%s) - start ))s" >&2
"$out" --version >&2
echo "$out"
