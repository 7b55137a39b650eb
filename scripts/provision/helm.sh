#!/usr/bin/env bash
# Build helm from the helm.sh/helm/v3 Go module into $CACHE/bin/helm.
# Idempotent: does nothing when the binary for the pinned version is there.
# Prints the binary path on its last line.
#
# HELM_VERSION overrides the pinned version.
set -euo pipefail

CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
version="${HELM_VERSION:-v3.22.0}"
# The Kubernetes minor version helm's go.mod builds against at $version; helm
# reports it as the default cluster version for `helm template`/`helm lint`.
k8s_minor="${HELM_K8S_MINOR:-37}"

bin_dir="$CACHE/bin"
out="$bin_dir/helm"
stamp="$bin_dir/.helm.version"

if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
  echo "helm.sh: helm $version already built" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "helm.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin_dir"

# The same version stamps helm's own Makefile sets; without them
# `helm version` reports a bare "v3.22".
ldflags="-s -w"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$version"
ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$k8s_minor"
done

echo "helm.sh: building helm $version" >&2
start=$(date +%s)
# `go install pkg@version` builds outside any module, so it needs no go.mod in
# the repo and never writes into the work tree. GOBIN is a temp dir so that a
# failed build leaves no half-written binary at $out.
tmp_bin="$(mktemp -d "$CACHE/helm-build.XXXXXX")"
trap 'rm -rf "$tmp_bin"' EXIT
(
  cd "$CACHE"
  GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tmp_bin" \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$version"
)
mv "$tmp_bin/helm" "$out"
echo "$version" > "$stamp"
echo "helm.sh: built in $(( $(date +%s) - start ))s" >&2
"$out" version --short >&2
echo "$out"
