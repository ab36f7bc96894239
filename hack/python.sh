#!/usr/bin/env bash
# Prints the Python interpreter to build the virtual environment with: $AISRE_PYTHON if
# set, else the newest suitable one found (PATH, then pyenv's versions). CPython 3.11.4-3.11.7
# and 3.12.0-3.12.1 are skipped: they raise "SystemError: AST constructor recursion depth
# mismatch" at random during pytest's assertion rewriting (CPython gh-106905, fixed in
# 3.11.8 and 3.12.2).
set -euo pipefail
if [[ -n "${AISRE_PYTHON:-}" ]]; then echo "$AISRE_PYTHON"; exit 0; fi
suitable() {
  "$1" - <<'PY' 2>/dev/null
import sys
v = sys.version_info
bad = (v[:2] == (3, 11) and 4 <= v.micro <= 7) or (v[:2] == (3, 12) and v.micro <= 1)
sys.exit(0 if v >= (3, 11) and not bad else 1)
PY
}
candidates=()
for name in python3.14 python3.13 python3.12 python3.11 python3; do
  path="$(command -v "$name" 2>/dev/null)" && candidates+=("$path")
done
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
for dir in $(ls -d "$pyenv_root"/versions/3.1[1-9]* 2>/dev/null | sort -rV); do
  candidates+=("$dir/bin/python3")
done
candidates+=(/usr/bin/python3)
for candidate in "${candidates[@]}"; do
  if [[ -x "$candidate" ]] && suitable "$candidate"; then echo "$candidate"; exit 0; fi
done
echo "no suitable Python (>= 3.11, not 3.11.4-3.11.7 or 3.12.0-3.12.1) found; set AISRE_PYTHON" >&2
exit 1
