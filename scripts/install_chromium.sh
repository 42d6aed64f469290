#!/bin/sh
# Install Debian's Chromium for the browser test (tests/test_browser.py) when it is missing.
# Needs root (CI runs as root). Nothing else is downloaded: Playwright drives /usr/bin/chromium.
set -eu
if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "install_chromium.sh: /usr/bin/chromium is missing and this is not root; run: sudo apt-get update && sudo apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium
/usr/bin/chromium --version
