#!/usr/bin/env bash
# Installs LocalStack (pinned, from PyPI) into a Python 3.13 venv under
# ~/.cache/pkgsum, with pkgsum's host-process Lambda executor (executor/).
# Idempotent: does nothing when the same pins and executor are there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"

# The executor is reinstalled whenever its source changes.
install_executor() {
  local want marker tmp
  want="$(cat "$here/executor/pyproject.toml" "$here"/executor/*.py | sha256sum | cut -d' ' -f1)"
  marker="$LOCALSTACK_VENV/.pkgsum-executor"
  [ "$(cat "$marker" 2>/dev/null)" = "$want" ] && return 0
  # Built from a copy: setuptools leaves build files beside the source.
  tmp="$(mktemp -d)"
  cp -r "$here/executor" "$tmp/"
  "$LOCALSTACK_VENV/bin/pip" install --quiet --no-deps --force-reinstall "$tmp/executor"
  rm -rf "$tmp"
  echo "$want" > "$marker"
}

marker="$LOCALSTACK_VENV/.pkgsum-pins"
if [ -x "$LOCALSTACK_VENV/bin/python" ] && [ "$(cat "$marker" 2>/dev/null)" = "${LOCALSTACK_PINS[*]}" ]; then
  install_executor
  exit 0
fi

python=""
for candidate in python3.13 "$HOME/.pyenv/versions/3.13.0/bin/python3.13" \
                 "$(ls -d "$HOME"/.pyenv/versions/3.13*/bin/python3.13 2>/dev/null | tail -n 1)"; do
  # pyenv shims exist for versions that are not selected: run it to know.
  if [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  echo "localstack/install.sh: Python 3.13 is required (localstack-core fails on 3.11 and 3.12)" >&2
  exit 1
fi

rm -rf "$LOCALSTACK_VENV"
"$python" -m venv "$LOCALSTACK_VENV"
"$LOCALSTACK_VENV/bin/pip" install --quiet --upgrade pip
"$LOCALSTACK_VENV/bin/pip" install --quiet "${LOCALSTACK_PINS[@]}"
echo "${LOCALSTACK_PINS[*]}" > "$marker"
install_executor
