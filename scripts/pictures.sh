#!/usr/bin/env bash
# The README's pictures in docs/: two diagrams (PNG) and screenshots of a model's and a run's report, taken by
# headless Chromium. RUN is a run folder (default: the newest in runs/, as `make demo` leaves it).
set -euo pipefail
cd "$(dirname "$0")/.."
CNNLAB=${CNNLAB:-.venv/bin/cnnlab}
RUN=${RUN:-$(ls -td runs/*/ | head -1)}
OUT=docs
mkdir -p "$OUT"
$CNNLAB diagram googlenet --depth 1 --out "$OUT/googlenet.png"
$CNNLAB diagram resnet50 --expand layer1.0 --out "$OUT/resnet50-layer1.0.png"
$CNNLAB report resnet50 --out "$OUT/.resnet50-report.html"
$CNNLAB report "$RUN"
profile=$(mktemp -d)
shot() {  # shot PAGE PNG
  chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
    --window-size=1280,1600 --screenshot="$2" "file://$(realpath "$1")" 2>/dev/null
}
shot "$OUT/.resnet50-report.html" "$OUT/report-resnet50.png"
shot "$RUN/report.html" "$OUT/report-run.png"
rm -rf "$profile" "$OUT/.resnet50-report.html"
ls -l "$OUT"
