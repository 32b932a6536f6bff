#!/usr/bin/env bash
# Create .venv with Python 3.12 and install llama-stack-judge with the given extras (default: test).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"

find_python() {
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c 'import sys' >/dev/null 2>&1; then
    command -v python3.12; return
  fi
  # pyenv shims answer "command not found" unless 3.12 is selected; ask pyenv for the interpreter itself.
  if command -v pyenv >/dev/null 2>&1; then
    local version
    version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | tail -n 1 || true)
    if [ -n "$version" ]; then echo "$(pyenv root)/versions/$version/bin/python3.12"; return; fi
  fi
  echo "llama-stack-judge needs Python 3.12 (llama-stack 0.7.x does); install python3.12 and retry" >&2
  exit 1
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
fi
log=$(mktemp)
if ! .venv/bin/python -m pip install --quiet ".[${extras}]" >"$log" 2>&1; then
  grep -v '^WARNING: Location' "$log" | tail -n 40 >&2
  exit 1
fi
rm -f "$log"
echo "ready: $(.venv/bin/python --version), llama-stack $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("llama-stack"))')"
