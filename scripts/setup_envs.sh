#!/usr/bin/env bash
# Creates the two virtual environments, idempotently: a stamp file holds the hash of the
# requirements it was built from, so a second run with unchanged requirements does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

RASA_VENV=${RASA_VENV:-.venv-rasa}
APP_VENV=${APP_VENV:-.venv}

find_python() {  # $1 = version, e.g. 3.10
  local v=$1 c
  for c in "python$v" "$HOME/.pyenv/versions/$v"*/bin/python3 /root/.pyenv/versions/"$v"*/bin/python3 /usr/bin/python"$v" /usr/local/bin/python"$v"; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import sys; sys.exit(0 if sys.version_info[:2]==tuple(map(int,'$v'.split('.'))) else 1)" 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

make_env() {  # $1 = venv dir, $2 = python version, $3.. = requirement files
  local dir=$1 ver=$2; shift 2
  local want; want=$(stamp_of "$@" scripts/setup_envs.sh)
  if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$want" ]; then
    echo "[setup] $dir is up to date"; return 0
  fi
  local py
  if ! py=$(find_python "$ver"); then
    echo "ERROR: Python $ver is required for $dir but was not found on PATH or under pyenv." >&2
    echo "       Install it (e.g. 'pyenv install $ver' or 'apt-get install python$ver python$ver-venv') and re-run." >&2
    exit 1
  fi
  echo "[setup] creating $dir with $py"
  [ -x "$dir/bin/python" ] || "$py" -m venv "$dir"
  pipq() { "$dir/bin/python" -m pip install -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
  pipq --upgrade pip
  if [ "$ver" = "3.11" ]; then
    pipq torch==2.13.0  # the CPU wheel on local disk, before anything pulls a CUDA build
  fi
  for req in "$@"; do pipq -r "$req"; done
  echo "$want" > "$dir/.stamp"
}

what=${1:-all}
export RASA_TELEMETRY_ENABLED=false
case "$what" in
  rasa) make_env "$RASA_VENV" 3.10 requirements/rasa.txt ;;
  app)  make_env "$APP_VENV" 3.11 requirements/app.txt ;;
  all)  make_env "$RASA_VENV" 3.10 requirements/rasa.txt & p=$!
        make_env "$APP_VENV" 3.11 requirements/app.txt
        wait $p ;;
  *) echo "usage: $0 [rasa|app|all]" >&2; exit 2 ;;
esac
