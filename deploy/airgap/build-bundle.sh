#!/usr/bin/env bash
# Build an air-gapped install bundle on a CONNECTED machine of the site's kind (same CPU
# architecture and Python minor version as the site): one folder (optionally one .tar) with
#   wheelhouse/   the project wheel and every dependency as a wheel (no compiler needed on site); the
#                 project wheel carries the web console's page and chart library (checked below)
#   models/       the model bundle folder(s) (default: every folder under the project's models/)
#   deploy/       systemd units, Kubernetes manifests, these scripts, deploy/README.md
#   install.sh    deploy/airgap/install-bundle.sh, to run on the site
#   BUNDLE        name, version, extras, Python version and architecture the wheels are for
#   SHA256SUMS    a checksum of every other file (sha256sum format); install.sh checks it first
#
# Full CPU bundle (about 1 GB; torch comes as the CPU wheel from a local folder via find-links):
#   deploy/airgap/build-bundle.sh --find-links /opt/wheels --out dist/edge-coat-bundle --tar
# GPU site (CUDA torch from the registry, several GB):
#   deploy/airgap/build-bundle.sh --extras gpu --out dist/edge-coat-bundle-gpu --tar
# Rebuild from a local mirror only (no registry):  ... --no-index --find-links MIRROR
#
# Options:
#   --out DIR          output folder; must not exist or be empty (default dist/<name>-bundle-<version>)
#   --project DIR      the project to bundle (default: this repository)
#   --extras LIST      extras installed on the site, comma-separated (default: cpu)
#   --find-links DIR   extra folder of wheels pip may take from (repeatable)
#   --no-index         take nothing from a registry: only --find-links folders
#   --models DIR       model bundle folder to include (repeatable; default: PROJECT/models/*/)
#   --no-models        include no model
#   --tar              also write OUT.tar (wheels are already compressed, so no gzip)
# Environment: PYTHON (default python3) is the interpreter whose pip builds the wheelhouse.
set -euo pipefail

die() { echo "build-bundle: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(cd "$HERE/.." && pwd)
PYTHON=${PYTHON:-python3}
PROJECT=$(cd "$DEPLOY/.." && pwd)
OUT=""
EXTRAS=cpu
FIND_LINKS=()
NO_INDEX=()
MODELS=()
MODELS_GIVEN=0
TAR=0

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=${2:?--out needs a folder}; shift 2 ;;
    --project) PROJECT=$(cd "${2:?--project needs a folder}" && pwd); shift 2 ;;
    --extras) EXTRAS=${2?--extras needs a list}; shift 2 ;;
    --find-links) FIND_LINKS+=(--find-links "$(cd "${2:?--find-links needs a folder}" && pwd)"); shift 2 ;;
    --no-index) NO_INDEX=(--no-index); shift ;;
    --models) MODELS+=("$(cd "${2:?--models needs a folder}" && pwd)"); MODELS_GIVEN=1; shift 2 ;;
    --no-models) MODELS_GIVEN=1; shift ;;
    --tar) TAR=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

out_is_empty() { [ ! -e "$1" ] || [ -z "$(ls -A "$1")" ]; }
[ -z "$OUT" ] || out_is_empty "$OUT" || die "output folder $OUT is not empty: remove it or choose another --out"
[ -f "$PROJECT/pyproject.toml" ] || die "expected a Python project with pyproject.toml in $PROJECT"
command -v sha256sum >/dev/null || die "sha256sum not found (GNU coreutils)"
PIP=("$PYTHON" -m pip --disable-pip-version-check)
# Without an index, pip cannot fetch build tools into an isolated build environment: build with
# the ones installed next to $PYTHON (setuptools, wheel).
BUILD_ISOLATION=()
[ ${#NO_INDEX[@]} -gt 0 ] && BUILD_ISOLATION=(--no-build-isolation)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "build-bundle: building the project wheel from $PROJECT"
"${PIP[@]}" wheel -q --no-deps "${BUILD_ISOLATION[@]}" --wheel-dir "$work/project" "$PROJECT" >&2
shopt -s nullglob
built=("$work"/project/*.whl)
[ ${#built[@]} -eq 1 ] || die "expected one project wheel, got: ${built[*]:-none}"
wheel=$(basename "${built[0]}")
# The web console's page and chart library (vendored from npm, see scripts/fetch_ui_assets.sh) are
# package data: the site has no CDN, so a wheel without them would serve a console with no charts.
if [ -d "$PROJECT/edge_coat/console/static" ]; then
  "$PYTHON" - "${built[0]}" <<'PY' || die "the project wheel lacks the console's assets (package-data in pyproject.toml)"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["edge_coat/console/static/index.html", "edge_coat/console/static/console.js",
        "edge_coat/console/static/vendor/uplot/uPlot.iife.min.js", "edge_coat/console/static/vendor/uplot/LICENSE"]
missing = [n for n in need if n not in names]
sys.exit(f"missing from the wheel: {missing}" if missing else 0)
PY
fi
# Wheel file name: {distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl
NAME=${wheel%%-*}
VERSION=$(echo "$wheel" | cut -d- -f2)
SPEC="$NAME${EXTRAS:+[$EXTRAS]}==$VERSION"

OUT=${OUT:-$PROJECT/dist/$NAME-bundle-$VERSION}
out_is_empty "$OUT" || die "output folder $OUT is not empty: remove it or choose another --out"
mkdir -p "$OUT/wheelhouse" "$OUT/models"
OUT=$(cd "$OUT" && pwd)
mv "${built[0]}" "$OUT/wheelhouse/"

echo "build-bundle: collecting $SPEC and its dependencies as wheels"
# `pip wheel` (not `pip download`): a dependency published only as source is built into a wheel
# here, so the site needs no compiler. The project wheel is taken from the wheelhouse itself.
"${PIP[@]}" wheel -q "${NO_INDEX[@]}" "${BUILD_ISOLATION[@]}" --find-links "$OUT/wheelhouse" "${FIND_LINKS[@]}" \
  --wheel-dir "$OUT/wheelhouse" "$SPEC" >&2

# A CPU bundle must not carry a CUDA torch (several GB, and the wrong build): that happens when
# pip found no CPU wheel of the pinned torch in a --find-links folder.
if [[ ",$EXTRAS," == *",cpu,"* ]]; then
  cuda=("$OUT"/wheelhouse/nvidia_*.whl)
  for t in "$OUT"/wheelhouse/torch-*.whl; do
    [[ $(basename "$t") == torch-*+cpu-* ]] || cuda+=("$t")
  done
  if [ ${#cuda[@]} -gt 0 ]; then
    die "a CUDA build came into this CPU bundle (${cuda[*]##*/}): pass --find-links DIR with the torch CPU wheel"
  fi
fi

if [ $MODELS_GIVEN -eq 0 ]; then
  for d in "$PROJECT"/models/*/; do MODELS+=("${d%/}"); done
fi
for m in "${MODELS[@]}"; do
  [ -n "$(ls -A "$m")" ] || die "model folder $m is empty"
  echo "build-bundle: model $(basename "$m")"
  cp -a "$m" "$OUT/models/"
done

echo "build-bundle: deploy files"
cp -a "$DEPLOY" "$OUT/deploy"
find "$OUT/deploy" -name __pycache__ -prune -exec rm -rf {} +
cp "$HERE/install-bundle.sh" "$OUT/install.sh"
chmod 755 "$OUT/install.sh"

pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
cat > "$OUT/BUNDLE" <<EOF
name=$NAME
version=$VERSION
extras=$EXTRAS
python=$pyver
machine=$(uname -m)
created=$(date -u +%Y-%m-%dT%H:%M:%SZ)
wheels=$(ls "$OUT/wheelhouse" | wc -l)
EOF

(cd "$OUT" && find . -type f -printf '%P\0' | sort -z | xargs -0 sha256sum) > "$work/SHA256SUMS"
mv "$work/SHA256SUMS" "$OUT/SHA256SUMS"
echo "build-bundle: $OUT ($(du -sh "$OUT" | cut -f1), $(wc -l < "$OUT/SHA256SUMS") files checksummed)"

if [ $TAR -eq 1 ]; then
  tar -C "$(dirname "$OUT")" -cf "$OUT.tar" "$(basename "$OUT")"
  (cd "$(dirname "$OUT")" && sha256sum "$(basename "$OUT").tar") > "$OUT.tar.sha256"
  echo "build-bundle: $OUT.tar (check on the site: sha256sum -c $(basename "$OUT").tar.sha256)"
fi
