#!/usr/bin/env bash
# Generates a TypeScript client from $VECHE_URL/openapi.json with openapi-typescript (the
# versions pinned in package-lock.json, installed under the cache directory), type-checks
# main.ts against it with tsc, and runs it with node against the same server.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
url="${VECHE_URL:?set VECHE_URL}"
modules="${VECHE_CACHE:-$HOME/.cache/veche}/api-client"
if ! cmp -s "$here/package-lock.json" "$modules/package-lock.json" || [[ ! -d $modules/node_modules/openapi-typescript ]]; then
  mkdir -p "$modules"
  cp "$here/package.json" "$here/package-lock.json" "$modules/"
  (cd "$modules" && npm ci --no-audit --no-fund --silent)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/main.ts" "$here/tsconfig.json" "$here/package.json" "$work/"
ln -s "$modules/node_modules" "$work/node_modules"
cd "$work"
curl -sf "$url/openapi.json" -o openapi.json
node_modules/.bin/openapi-typescript openapi.json -o schema.d.ts --silent
node_modules/.bin/tsc -p tsconfig.json
VECHE_URL="$url" node out/main.js
