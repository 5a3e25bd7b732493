#!/usr/bin/env bash
# Copies the web console's libraries from the npm registry into gateway/http/console/static/vendor/, with
# their licences, so the console works offline (no CDN) and installs with the package. Run it to upgrade a
# library (change the version below), then commit the result; the build never runs it.
#
#   preact  (MIT)        the page's components; text is always rendered as text (no innerHTML)
#   htm     (Apache-2.0) JSX-like tagged templates for preact without a build step (no eval: CSP-safe)
#   uplot   (MIT)        the small time-series charts
#
# Preact's hooks import the bare specifier "preact"; a page without an import map (an inline script, which
# the console's Content-Security-Policy forbids) cannot resolve it, so it is rewritten to "./preact.mjs".
# Source-map comments are dropped (the maps are not vendored). VERSIONS lists what was copied and the sha256
# of each npm tarball.
set -euo pipefail
PREACT=11.2.0
HTM=3.1.1
UPLOT=1.6.32

here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/gateway/http/console/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install npm)" >&2; exit 1; }

cd "$work"
npm pack --silent "preact@$PREACT" "htm@$HTM" "uplot@$UPLOT" >/dev/null
for name in preact htm uplot; do
    mkdir "$name"
    tar xzf "$name"-*.tgz -C "$name"
done
rm -rf "$out"
mkdir -p "$out"
strip_map() { sed -e '/^\/\/# sourceMappingURL=/d' -e 's#//\# sourceMappingURL=[^ ]*$##' "$1"; }
strip_map preact/package/dist/preact.mjs >"$out/preact.mjs"
strip_map preact/package/hooks/dist/hooks.mjs | sed -e 's#from"preact"#from"./preact.mjs"#g' >"$out/preact-hooks.mjs"
grep -q 'from"./preact.mjs"' "$out/preact-hooks.mjs" || { echo "preact hooks: import not rewritten" >&2; exit 1; }
if grep -q 'from"preact"' "$out/preact-hooks.mjs"; then echo "preact hooks: bare import left" >&2; exit 1; fi
strip_map htm/package/dist/htm.mjs >"$out/htm.mjs"
strip_map uplot/package/dist/uPlot.iife.min.js >"$out/uPlot.iife.min.js"
cp uplot/package/dist/uPlot.min.css "$out/uPlot.min.css"
cp preact/package/LICENSE "$out/LICENSE.preact"
cp htm/package/LICENSE "$out/LICENSE.htm"
cp uplot/package/LICENSE "$out/LICENSE.uplot"
{
    echo "# Vendored by scripts/vendor-console.sh from the npm registry; do not edit by hand."
    for name in preact htm uplot; do
        tarball=$(ls "$name"-*.tgz)
        echo "$name ${tarball#"$name"-} sha256:$(sha256sum "$tarball" | cut -d' ' -f1)"
    done
} | sed -e 's/\.tgz / /' >"$out/VERSIONS"
echo "vendored into $out:" >&2
cat "$out/VERSIONS" >&2
