#!/usr/bin/env bash
# Copy the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor, PrometheusRule) from
# its Go module (github.com/prometheus-operator/prometheus-operator, where they are YAML
# under example/prometheus-operator-crd/) into
# $CNINFRA_CACHE/prometheus-operator-crds (default cache: ~/.cache/cninfra-sidecar).
# The monitoring tests apply them to the test kube-apiserver, then dry-run the chart's
# monitors and rules against them. A no-op when that version is there already.
# Prints the directory last.
#
# PROMETHEUS_OPERATOR_VERSION overrides the pinned module version.
set -euo pipefail

me="monitoring-crds.sh"
version="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
module="github.com/prometheus-operator/prometheus-operator"
crds=(servicemonitors podmonitors prometheusrules)

CACHE="${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}"
out="$CACHE/prometheus-operator-crds"
if [[ -f "$out/.version" && "$(cat "$out/.version")" == "$version" ]]; then
  echo "$me: the CRDs of prometheus-operator $version are there already" >&2
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "$me: go is not installed (it fetches the module)" >&2; exit 1; }
mkdir -p "$CACHE"
# Outside any go.mod, and never the machine's other Go: the module is only downloaded.
dir="$(cd "$CACHE" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$module@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir/example/prometheus-operator-crd" ]] || {
  echo "$me: $module@$version has no example/prometheus-operator-crd/" >&2; exit 1; }
tmp="$(mktemp -d "$CACHE/prometheus-operator-crds.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
for crd in "${crds[@]}"; do
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$crd.yaml" "$tmp/"
done
chmod u+w "$tmp"/*.yaml  # the module cache is read-only
chmod 755 "$tmp"
echo "$version" > "$tmp/.version"
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$me: copied ${crds[*]} of prometheus-operator $version" >&2
echo "$out"
