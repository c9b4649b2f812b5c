#!/usr/bin/env bash
# Installs what building and testing pkgsum needs from Debian beside a
# Rust toolchain and a C compiler: OpenSSL's headers and pkg-config, to
# link the system's OpenSSL for the X.509 checks (building it from source
# instead costs about 5 minutes of CPU), and Chromium with its WebDriver
# for the site's tests. Once; a no-op when present.
set -euo pipefail
if command -v pkg-config >/dev/null && pkg-config --exists openssl \
  && command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends libssl-dev pkg-config \
  chromium chromium-driver >/dev/null
