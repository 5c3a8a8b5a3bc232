#!/usr/bin/env bash
# Makes the tools of the gateway's pod-contract test available (tests/test_gateway_pod_contract.py):
# `bwrap` (bubblewrap: runs the real proxy with the pod's UID, environment and read-only root),
# `redis-server` and `redis-cli` with TLS (a real Redis cluster standing in for ElastiCache Serverless) and
# `openssl` (its throwaway CA). Quiet and exit 0 when all are there.
#
# As root on Debian/Ubuntu it installs the packages bubblewrap, redis-server, redis-tools and openssl. The
# redis-server package's postinst would start a server on 127.0.0.1:6379 wherever an init system honours
# it, so the install runs behind a temporary /usr/sbin/policy-rc.d that denies every service start (the
# tests start their own servers). Otherwise it names exactly what is missing and exits 1.
set -euo pipefail

declare -A package_of=([bwrap]=bubblewrap [redis-server]=redis-server [redis-cli]=redis-tools [openssl]=openssl)

missing_tools() {
  missing=()
  for tool in bwrap redis-server redis-cli openssl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
}

missing_tools
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  packages=()
  for tool in "${missing[@]}"; do packages+=("${package_of[$tool]}"); done
  echo "ensure-sandbox: installing Debian packages: ${packages[*]}" >&2
  policy=/usr/sbin/policy-rc.d
  policy_backup=""
  if [ -e "$policy" ]; then
    policy_backup="$(mktemp "${policy}.ensure-sandbox.XXXXXX")"
    cp -p "$policy" "$policy_backup"
  fi
  restore_policy() { if [ -n "$policy_backup" ]; then mv -f "$policy_backup" "$policy"; else rm -f "$policy"; fi; }
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  export DEBIAN_FRONTEND=noninteractive
  log="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-sandbox: apt-get failed installing ${packages[*]} (output above)" >&2
    exit 1
  fi
  rm -f "$log"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now redis-server.service >/dev/null 2>&1 || true
  fi
  missing_tools
  [ ${#missing[@]} -eq 0 ] && exit 0
fi

echo "missing tools for the gateway's pod-contract test:" >&2
for tool in "${missing[@]}"; do echo "  - $tool (Debian/Ubuntu package ${package_of[$tool]})" >&2; done
echo "install them (as root: apt-get install --no-install-recommends bubblewrap redis-server redis-tools openssl)" >&2
exit 1
