#!/usr/bin/env bash
# Install headless Chromium for the report browser test (tests/test_report_browser.py).
# Playwright drives /usr/bin/chromium directly, so no chromium-driver and no Playwright download.
# Idempotent: does nothing when Chromium is already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y chromium
