#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver (chromedriver) from Debian for the browser test of
# the relay form (tests/bootstrap/test_bootstrap_chromium.py). Idempotent: prints nothing and
# exits 0 when both are there. Needs apt-get and root (or sudo); exits 1 when it cannot install.
#   scripts/test.sh calls it; CI=true makes a missing browser a test failure, not a skip.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "browser-tools: apt-get not found; install chromium and chromium-driver by hand" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  else
    echo "browser-tools: need root (or passwordless sudo) to apt-get install chromium" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "installing chromium and chromium-driver (Debian)" >&2
# Package lists may be missing or stale: refresh them only when the first try fails.
if ! $sudo apt-get install -y -q chromium chromium-driver >&2; then
  $sudo apt-get update -q >&2
  $sudo apt-get install -y -q chromium chromium-driver >&2
fi
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]
