#!/usr/bin/env bash
# System packages the tests need and a fresh machine lacks (Debian): promtool and prometheus,
# rabbitmq-server (private nodes for the broker-restart and quorum tests),
# docker-compose (to validate docker-compose.yml without an engine), chromium for browser tests.
# Installs only what is missing; quiet when all is there. Root or sudo needed the first time.
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)  # promtool, and prometheus for the live dashboard test
command -v prometheus >/dev/null || need+=(prometheus)
# The resilience tests start RabbitMQ nodes of their own (Debian's rabbitmq-server, run as its user by runuser).
command -v rabbitmq-server >/dev/null || need+=(rabbitmq-server)
command -v runuser >/dev/null || need+=(util-linux)
command -v docker-compose >/dev/null || need+=(docker-compose)
# Browser tests drive Debian's Chromium (test tools cannot download their own browser here).
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)

[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${need[*]} (install them with your package manager)" >&2
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing system packages: ${need[*]}"
# Debian starts the prometheus daemon on install; the tests only need promtool. A policy-rc.d that
# answers 101 keeps the package scripts from starting it (honoured by invoke-rc.d and deb-systemd-invoke),
# rather than killing every process named prometheus afterwards, which would also stop one the user runs.
POLICY=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  made_policy=1
fi
cleanup() { [ -z "$made_policy" ] || $SUDO rm -f "$POLICY"; }
trap cleanup EXIT
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Nor start it at the next boot.
if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable prometheus.service >/dev/null 2>&1 || true
fi
