#!/usr/bin/env bash
# Installs the Debian packages Algostore needs, only those that are missing.
#   bubblewrap: the sandbox that untrusted algorithm code runs in
#   chromium:   the headless browser the page tests drive with Playwright
#   python3-venv: virtual environments on a Debian Python
set -euo pipefail

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${missing[*]}. Run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
