#!/usr/bin/env bash
# Runs one long install step and says what it is, that it is running, and how long it took, so a
# quiet `pip install` or `npm ci` is not mistaken for a hang. Usage: scripts/step.sh "label" command...
set -euo pipefail
label=$1
shift
start=$(date +%s)
echo "==> ${label}..." >&2
"$@"
echo "==> ${label}: done in $(($(date +%s) - start)) s" >&2
