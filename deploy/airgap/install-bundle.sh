#!/usr/bin/env bash
# Install an edge-coat bundle (from deploy/airgap/build-bundle.sh) on an air-gapped site.
# Nothing is fetched: pip runs with --no-index from the bundle's wheelhouse only.
#
#   sudo ./install.sh [BUNDLE] [--prefix /opt/edge-coat] [--python python3] [--systemd]
#
# BUNDLE is the bundle folder or its .tar (default: the folder this script is in). Steps:
#   1. check every file against SHA256SUMS, and that no file is unlisted;
#   2. check the Python version and machine the wheels were built for;
#   3. create (or reuse) the venv PREFIX/venv and `pip install --no-index` the project from the
#      wheelhouse, with the bundle's extras (cpu by default);
#   4. install the model bundles into PREFIX/models and run `edge-coat models verify` on each
#      (skipped with a warning where this version has no `models` command);
#   5. with --systemd: the dedicated user (sysusers.d), the units and their hardening drop-in,
#      /etc/edge-coat for the site config and keys. --root DIR installs those under DIR instead
#      of / (an image being prepared, or a test) and then starts nothing.
# Options:
#   --prefix DIR            install folder (default /opt/edge-coat; the units expect that path and
#                           are rewritten when another is given)
#   --python PY             interpreter for the venv (default python3; must match the bundle's)
#   --systemd               install the systemd units and the service account
#   --root DIR              with --systemd: file-system root for units, sysusers, /etc/edge-coat
#   --skip-model-verify     do not run `edge-coat models verify`
set -euo pipefail

die() { echo "install-bundle: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUNDLE=""
PREFIX=/opt/edge-coat
PYTHON=python3
SYSTEMD=0
ROOT=/
VERIFY=1

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a folder}; shift 2 ;;
    --python) PYTHON=${2:?--python needs an interpreter}; shift 2 ;;
    --systemd) SYSTEMD=1; shift ;;
    --root) ROOT=${2:?--root needs a folder}; shift 2 ;;
    --skip-model-verify) VERIFY=0; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$BUNDLE" ] || die "one bundle at a time, got '$BUNDLE' and '$1'"; BUNDLE=$1; shift ;;
  esac
done
BUNDLE=${BUNDLE:-$HERE}

if [ -f "$BUNDLE" ]; then
  case "$BUNDLE" in
    *.tar) ;;
    *) die "expected a bundle folder or a .tar, got the file $BUNDLE" ;;
  esac
  extracted=$(mktemp -d)
  trap 'rm -rf "$extracted"' EXIT
  tar -C "$extracted" -xf "$BUNDLE"
  inner=("$extracted"/*/)
  [ ${#inner[@]} -eq 1 ] || die "expected one folder in $BUNDLE"
  BUNDLE=${inner[0]%/}
fi
[ -d "$BUNDLE" ] || die "no bundle folder at $BUNDLE"
BUNDLE=$(cd "$BUNDLE" && pwd)
[ -f "$BUNDLE/SHA256SUMS" ] && [ -f "$BUNDLE/BUNDLE" ] || die "$BUNDLE is not a bundle (no SHA256SUMS or BUNDLE file)"

echo "install-bundle: checking $(wc -l < "$BUNDLE/SHA256SUMS") files against SHA256SUMS"
if ! bad=$(cd "$BUNDLE" && sha256sum --check --strict --quiet SHA256SUMS 2>&1); then
  die "checksum mismatch, the bundle is damaged or was changed (copy it again from the build machine):
$bad"
fi
unlisted=$(cd "$BUNDLE" && comm -23 <(find . -type f ! -name SHA256SUMS -printf '%P\n' | sort) \
  <(sed -E 's/^[0-9a-f]{64} [ *]//' SHA256SUMS | sort))
[ -z "$unlisted" ] || die "files not in SHA256SUMS (added after the build): $unlisted"

field() { sed -n "s/^$1=//p" "$BUNDLE/BUNDLE"; }
NAME=$(field name); VERSION=$(field version); EXTRAS=$(field extras)
[ -n "$NAME" ] && [ -n "$VERSION" ] || die "BUNDLE lacks name= or version="
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "cannot run $PYTHON"
[ "$pyver" = "$(field python)" ] || die "the wheels are for Python $(field python), $PYTHON is $pyver: pass --python"
[ "$(uname -m)" = "$(field machine)" ] || die "the wheels are for $(field machine), this machine is $(uname -m)"

# Only the bundle: no pip config, index or find-links from this machine's environment.
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
unset PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_FIND_LINKS PIP_CONSTRAINT PIP_REQUIREMENT

mkdir -p "$PREFIX"
PREFIX=$(cd "$PREFIX" && pwd)
if [ ! -x "$PREFIX/venv/bin/python" ]; then
  echo "install-bundle: creating $PREFIX/venv"
  "$PYTHON" -m venv "$PREFIX/venv"
fi
SPEC="$NAME${EXTRAS:+[$EXTRAS]}==$VERSION"
echo "install-bundle: pip install --no-index $SPEC"
"$PREFIX/venv/bin/python" -m pip install -q --no-index --find-links "$BUNDLE/wheelhouse" "$SPEC"

mkdir -p "$PREFIX/models"
for m in "$BUNDLE"/models/*/; do
  m=${m%/}; name=$(basename "$m")
  # Replace each model folder whole, so no file of an older version stays behind.
  rm -rf "$PREFIX/models/.$name.new"
  cp -a "$m" "$PREFIX/models/.$name.new"
  rm -rf "$PREFIX/models/$name"
  mv "$PREFIX/models/.$name.new" "$PREFIX/models/$name"
  echo "install-bundle: model $name -> $PREFIX/models/$name"
done

EDGE_COAT="$PREFIX/venv/bin/edge-coat"
if [ $VERIFY -eq 1 ]; then
  if [ ! -x "$EDGE_COAT" ]; then
    die "$EDGE_COAT is missing after the install"
  elif ! "$EDGE_COAT" models --help >/dev/null 2>&1; then
    echo "install-bundle: WARNING: this version has no 'edge-coat models' command: models not verified" >&2
  else
    for m in "$PREFIX"/models/*/; do
      "$EDGE_COAT" models verify "${m%/}" || die "model ${m%/} failed verification (see above)"
    done
  fi
fi

rm -rf "$PREFIX/deploy.new"
cp -a "$BUNDLE/deploy" "$PREFIX/deploy.new"
rm -rf "$PREFIX/deploy"
mv "$PREFIX/deploy.new" "$PREFIX/deploy"

if [ $SYSTEMD -eq 1 ]; then
  mkdir -p "$ROOT"
  ROOT=$(cd "$ROOT" && pwd)
  units="$ROOT/etc/systemd/system"
  src="$BUNDLE/deploy/systemd"
  mkdir -p "$units/edge-coat-.service.d" "$ROOT/usr/lib/sysusers.d"
  install -m 0644 "$src/edge-coat.sysusers" "$ROOT/usr/lib/sysusers.d/edge-coat.conf"
  for f in "$src"/*.service "$src"/edge-coat-.service.d/*.conf; do
    dest="$units/${f#"$src"/}"
    sed "s#/opt/edge-coat/#$PREFIX/#g" "$f" > "$dest"
    chmod 0644 "$dest"
  done
  if [ "$ROOT" = / ]; then systemd-sysusers /usr/lib/sysusers.d/edge-coat.conf
  else systemd-sysusers --root="$ROOT" "$ROOT/usr/lib/sysusers.d/edge-coat.conf"; fi
  # Config and keys: root writes them, the service account reads them.
  install -d -m 0750 "$ROOT/etc/edge-coat" "$ROOT/etc/edge-coat/keys"
  # chown through the root's own group database (the account may exist only there).
  gid=$(awk -F: '$1 == "edge-coat" { print $3 }' "$ROOT/etc/group")
  [ -n "$gid" ] || die "systemd-sysusers did not create the group edge-coat in $ROOT/etc/group"
  chown "0:$gid" "$ROOT/etc/edge-coat" "$ROOT/etc/edge-coat/keys"
  echo "install-bundle: units in $units; put the site config in $ROOT/etc/edge-coat/site.yaml"
  if [ "$ROOT" = / ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "install-bundle: then: systemctl enable --now edge-coat-run.service  (or capture/worker/serve)"
  fi
fi

echo "install-bundle: installed $NAME $VERSION into $PREFIX"
