#!/usr/bin/env bash
# The console's chart library (uPlot, MIT) comes from the npm registry at install time, never from a
# CDN at run time. The built files are small, so they are committed under
# edge_coat/console/static/vendor/uplot/ with the package's LICENSE and a SHA256SUMS; this script
# re-fetches them with npm and checks them:
#
#   scripts/fetch_ui_assets.sh           # fetch uplot@VERSION with `npm pack`, check the tarball's npm
#                                        # integrity and every file's sha256, then install the files
#   scripts/fetch_ui_assets.sh --check   # offline: are the vendored files there and unchanged?
#
# setup.sh runs --check and fetches only when it fails. To move to a new uPlot version: change
# VERSION and INTEGRITY (`npm view uplot@X dist.integrity`), run with --update, review, commit.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.6.32
INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
DEST=edge_coat/console/static/vendor/uplot
FILES=(LICENSE dist/uPlot.iife.min.js dist/uPlot.min.css)

check() { [ -f "$DEST/SHA256SUMS" ] && (cd "$DEST" && sha256sum --quiet -c SHA256SUMS); }

mode=${1:-fetch}
case "$mode" in
  --check) check && echo "fetch_ui_assets: uPlot $VERSION present and verified in $DEST"; exit $? ;;
  fetch|--update) ;;
  *) echo "usage: $0 [--check|--update]" >&2; exit 2 ;;
esac

command -v npm >/dev/null || { echo "fetch_ui_assets: npm not found (apt-get install npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$VERSION" >/dev/null)
tarball="$work/uplot-$VERSION.tgz"
got="sha512-$(python3 -c 'import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],"rb").read()).digest()).decode())' "$tarball")"
[ "$got" = "$INTEGRITY" ] || { echo "fetch_ui_assets: uplot-$VERSION.tgz integrity $got, expected $INTEGRITY" >&2; exit 1; }
tar -xzf "$tarball" -C "$work"
mkdir -p "$work/out"
for f in "${FILES[@]}"; do cp "$work/package/$f" "$work/out/$(basename "$f")"; done
if [ "$mode" = --update ]; then
  (cd "$work/out" && sha256sum LICENSE uPlot.iife.min.js uPlot.min.css > SHA256SUMS)
else
  cp "$DEST/SHA256SUMS" "$work/out/SHA256SUMS"
  (cd "$work/out" && sha256sum --quiet -c SHA256SUMS) || { echo "fetch_ui_assets: files differ from $DEST/SHA256SUMS" >&2; exit 1; }
fi
mkdir -p "$DEST"
cp "$work"/out/* "$DEST/"
echo "fetch_ui_assets: uPlot $VERSION installed in $DEST (npm integrity and sha256 verified)"
