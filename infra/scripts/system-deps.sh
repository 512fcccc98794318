#!/usr/bin/env bash
# System packages the tests need and a fresh machine lacks (Debian): promtool (prometheus),
# docker-compose (to validate docker-compose.yml without an engine).
# Installs only what is missing; quiet when all is there. Root or sudo needed the first time.
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v docker-compose >/dev/null || need+=(docker-compose)



[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${need[*]}"
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the prometheus daemon on install; the tests only need promtool.
$SUDO pkill -x prometheus 2>/dev/null || true
