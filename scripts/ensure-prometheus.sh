#!/usr/bin/env bash
# Makes `promtool` and `prometheus` (>= 2.40) available on PATH for the PromQL tests
# (tests/prometheus_harness.py), and `amtool` for the alert manager definition's check. Quiet and exit 0
# when all three are already there.
#
# As root on a Debian/Ubuntu machine it installs Debian's `prometheus` package, which ships the first
# two, and `prometheus-alertmanager` (amtool), without their Recommends (prometheus-node-exporter would
# be one more daemon). The packages' postinst would start servers on 0.0.0.0 wherever an init system
# honours it, so the install runs behind a temporary /usr/sbin/policy-rc.d that denies every service
# start, and on a systemd host the units are disabled afterwards: the tests start their own servers on
# 127.0.0.1.
# Otherwise it names exactly what is missing and how to get it, and exits 1.
set -euo pipefail

MIN_MAJOR=2
MIN_MINOR=40

# tool_ok NAME: NAME is on PATH and reports a version >= MIN_MAJOR.MIN_MINOR.
tool_ok() {
  local out major minor
  command -v "$1" >/dev/null 2>&1 || return 1
  out="$("$1" --version 2>&1 | head -n 1)" || return 1
  [[ $out =~ version[[:space:]]+([0-9]+)\.([0-9]+) ]] || return 1
  major=${BASH_REMATCH[1]}
  minor=${BASH_REMATCH[2]}
  ((major > MIN_MAJOR || (major == MIN_MAJOR && minor >= MIN_MINOR)))
}

# describe NAME: why NAME does not do ("not on PATH" or the version it reports).
describe() {
  if command -v "$1" >/dev/null 2>&1; then
    echo "$1 ($(command -v "$1") is too old or unusable: $("$1" --version 2>&1 | head -n 1))"
  else
    echo "$1 (not on PATH)"
  fi
}

missing_tools() {
  missing=()
  tool_ok promtool || missing+=("$(describe promtool)")
  tool_ok prometheus || missing+=("$(describe prometheus)")
  # amtool has its own version line ("amtool, version 0.25.0"); sns_configs need Alertmanager >= 0.23.
  command -v amtool >/dev/null 2>&1 || missing+=("amtool (not on PATH)")
}

missing_tools
[ ${#missing[@]} -eq 0 ] && exit 0

policy=/usr/sbin/policy-rc.d
policy_backup=""
restore_policy() {
  if [ -n "$policy_backup" ]; then
    mv -f "$policy_backup" "$policy"
  else
    rm -f "$policy"
  fi
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  packages=(prometheus prometheus-alertmanager)
  echo "ensure-prometheus: installing Debian packages ${packages[*]} (missing: ${missing[*]})" >&2
  newly_installed=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'ok installed' || newly_installed+=("$package")
  done

  # Deny every service start during the install (exit 101 = "action forbidden by policy").
  if [ -e "$policy" ]; then
    policy_backup="$(mktemp "${policy}.ensure-prometheus.XXXXXX")"
    cp -p "$policy" "$policy_backup"
  fi
  trap restore_policy EXIT
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 0755 "$policy"

  export DEBIAN_FRONTEND=noninteractive
  log="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "ensure-prometheus: apt-get failed installing ${packages[*]} (output above)" >&2
    exit 1
  fi
  rm -f "$log"

  restore_policy
  trap - EXIT

  # Keep the packaged services from starting at the next boot, too.
  for package in "${newly_installed[@]}"; do
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now "$package.service" >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
      update-rc.d "$package" disable >/dev/null 2>&1 || true
    fi
  done

  missing_tools
  [ ${#missing[@]} -eq 0 ] && exit 0
  echo "ensure-prometheus: still missing after the install: ${missing[*]}" >&2
fi

echo "missing Prometheus tools (prometheus and promtool >= ${MIN_MAJOR}.${MIN_MINOR}, and amtool, needed on PATH):" >&2
for tool in "${missing[@]}"; do echo "  - $tool" >&2; done
cat >&2 <<'EOF'
prometheus and promtool come with Prometheus, amtool with Alertmanager:
  - Debian/Ubuntu (as root):  apt-get install --no-install-recommends prometheus prometheus-alertmanager
    (run this script as root to do it; it keeps the packaged service from starting)
  - macOS:                    brew install prometheus alertmanager
  - elsewhere: unpack the prometheus-<version>.linux-<arch>.tar.gz and
    alertmanager-<version>.linux-<arch>.tar.gz release archives from the Prometheus download
    page and put `prometheus`, `promtool` and `amtool` on PATH.
EOF
exit 1
