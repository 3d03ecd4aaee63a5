#!/usr/bin/env bash
# Renders an HTML report to a PNG with headless Chromium, offline, after its charts drew.
#   scripts/report-screenshot.sh report.html docs/report.png [HEIGHT]
# HEIGHT is the page height captured in pixels (default 5000); the width is 1400.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 REPORT.html OUT.png [HEIGHT]" >&2
  exit 2
fi
page=$(realpath "$1")
out=$(realpath -m "$2")
height=${3:-5000}
browser=""
for b in chromium chromium-browser google-chrome google-chrome-stable; do
  if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
if [ -z "$browser" ]; then
  echo "report-screenshot: no chromium found (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --disable-extensions --hide-scrollbars --virtual-time-budget=20000 \
  --user-data-dir="$profile" --window-size=1400,"$height" --screenshot="$out" \
  "file://$page" 2>/dev/null
echo "report-screenshot: $out"
