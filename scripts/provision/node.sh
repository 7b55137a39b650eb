#!/usr/bin/env bash
# The Debian packages of the single-node cluster of tests/e2e: containerd and runc
# (the node's container runtime), the CNI plugins (bridge, host-local, loopback),
# iptables (kube-proxy's Service rules), buildah and mmdebstrap (the
# images, without a registry). Installs the missing ones (`apt-get update` first);
# a no-op when all are there. Needs root.
set -euo pipefail

me="node.sh"
packages=(containerd runc containernetworking-plugins iptables buildah mmdebstrap)
missing=()
for p in "${packages[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" == installed ]] || missing+=("$p")
done
if (( ${#missing[@]} == 0 )); then
  echo "$me: ${packages[*]} already installed" >&2
  exit 0
fi
command -v apt-get >/dev/null || { echo "$me: no apt-get: install ${missing[*]} by hand" >&2; exit 1; }
(( EUID == 0 )) || { echo "$me: needs root to install ${missing[*]}" >&2; exit 1; }

# The package scripts must not start a machine-wide containerd: the tests run one
# of their own. policy-rc.d is what invoke-rc.d and deb-systemd-invoke ask.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$policy" ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && own_policy=1
fi
trap '(( own_policy )) && rm -f "$policy"' EXIT

export DEBIAN_FRONTEND=noninteractive
echo "$me: installing ${missing[*]}" >&2
# Another apt (another session's provisioning) may hold the lock for a while.
apt-get update -o DPkg::Lock::Timeout=600 >&2
apt-get install -y --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2
