#!/usr/bin/env bash
# Build kustomize from the sigs.k8s.io/kustomize/kustomize/v5 Go module into
# $CACHE/bin/kustomize (the packaging tests build manifests/ with it).
# Idempotent: does nothing when the binary for the pinned version is there.
# Prints the binary path on its last line.
#
# KUSTOMIZE_VERSION overrides the pinned version (v5.8.1 is the newest that
# builds with Go 1.26; later ones need Go 1.27).
set -euo pipefail

CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
version="${KUSTOMIZE_VERSION:-v5.8.1}"

bin_dir="$CACHE/bin"
out="$bin_dir/kustomize"
stamp="$bin_dir/.kustomize.version"

if [[ -x "$out" && -f "$stamp" && "$(cat "$stamp")" == "$version" ]]; then
  echo "kustomize.sh: kustomize $version already built" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "kustomize.sh: go is not installed" >&2; exit 1; }
mkdir -p "$bin_dir"

echo "kustomize.sh: building kustomize $version" >&2
start=$(date +%s)
# As in helm.sh: `go install pkg@version` needs no go.mod and writes nothing
# into the work tree; a temp GOBIN leaves no half-written binary at $out.
tmp_bin="$(mktemp -d "$CACHE/kustomize-build.XXXXXX")"
trap 'rm -rf "$tmp_bin"' EXIT
(
  cd "$CACHE"
  GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$tmp_bin" \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$version"
)
mv "$tmp_bin/kustomize" "$out"
echo "$version" > "$stamp"
echo "kustomize.sh: built in $(( $(date +%s) - start ))s" >&2
"$out" version >&2
echo "$out"
