#!/usr/bin/env bash
# Checks the system tools `make` needs: Python >= 3.11 with venv, Node.js >= 18 with npm.
# As root on a Debian/Ubuntu machine it installs what is missing with apt-get; otherwise it names
# exactly what is missing and exits 1.
set -euo pipefail

missing=()
python_ok() { command -v python3 >/dev/null && python3 -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }
node_ok() { command -v node >/dev/null && command -v npm >/dev/null && node -e 'process.exit(parseInt(process.versions.node) < 18 ? 1 : 0)'; }

python_ok || missing+=("python3 (>= 3.11, with the venv module)")
node_ok || missing+=("node (>= 18) and npm")
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing with apt-get: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  python_ok || apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
  node_ok || apt-get install -y -qq nodejs npm >/dev/null
  missing=()
  python_ok || missing+=("python3 (>= 3.11, with the venv module): apt's python3 is older; install Python 3.11+")
  node_ok || missing+=("node (>= 18) and npm: apt's nodejs is older; install Node.js 18+")
  [ ${#missing[@]} -eq 0 ] && exit 0
fi
echo "missing prerequisites:" >&2
for item in "${missing[@]}"; do echo "  - $item" >&2; done
exit 1
