#!/usr/bin/env bash
# Screenshots of the web app's main pages for the README (docs/images/*.png): the
# browser tests drive headless Chromium through the pages and save them there.
set -euo pipefail
cd "$(dirname "$0")/.."
export ROLLCALL_SCREENSHOTS="$PWD/docs/images"
.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_web_browser.py
