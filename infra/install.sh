#!/usr/bin/env bash
# Installs the IaC checkers (pinned, from PyPI) into a venv under
# ~/.cache/pkgsum: cfn-lint for the SAM template, python-hcl2 and checkov
# for the Terraform module; and systemd-analyze (Debian's systemd) for the
# unit of `pkgsum serve`. Idempotent: does nothing when they are there.
set -euo pipefail
if ! command -v systemd-analyze >/dev/null; then
  apt-get install -y --no-install-recommends systemd >/dev/null
fi
venv="${INFRA_VENV:-${PKGSUM_CACHE:-$HOME/.cache/pkgsum}/infra-venv}"
pins=('cfn-lint==1.58.0' 'python-hcl2==8.1.4' 'checkov==3.3.30')
marker="$venv/.pkgsum-pins"
if [ -x "$venv/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "${pins[*]}" ]; then
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "${pins[@]}"
echo "${pins[*]}" > "$marker"
