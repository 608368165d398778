#!/usr/bin/env bash
# Create or reuse .venv for this checkout.
#
# The pinned dependencies (torch with its CUDA libraries makes them about 5.5 GB) are installed once
# per requirements hash into a shared cache, $TICKFLOW_CACHE/venvs/<hash> (default
# ~/.cache/tickflow), so a fresh clone does not reinstall them. The checkout's own .venv is a small
# venv that sees the cached packages and this checkout through a .pth file, with the `tickflow`
# command and the tools' commands as small wrappers.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "tickflow needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2; exit 2; }
pyver=$("$PYTHON" -c 'import sys; print(f"py{sys.version_info[0]}{sys.version_info[1]}")')
key=$(cat requirements.txt requirements.lock | sha256sum | cut -c1-16)
cache=${TICKFLOW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tickflow}
deps="$cache/venvs/$pyver-$key"
mkdir -p "$cache/venvs"
exec 9>"$cache/venvs/.lock"
flock 9
if [ ! -f "$deps/.complete" ]; then
  echo "setup: installing the pinned dependencies into $deps (first run on this machine; torch is large)"
  start=$SECONDS
  rm -rf "$deps"
  "$PYTHON" -m venv "$deps"
  "$deps/bin/python" -m pip install --progress-bar off -r requirements.txt -c requirements.lock
  touch "$deps/.complete"
  echo "setup: dependencies installed in $((SECONDS - start))s ($(du -sh "$deps" | cut -f1))"
fi
touch "$deps/.complete"  # marks it as in use
# Environments of other requirement sets, unused for 14 days, go (each is about 5.5 GB).
for old in "$cache"/venvs/py*; do
  if [ "$old" != "$deps" ] && [ -f "$old/.complete" ] && [ -n "$(find "$old/.complete" -mtime +14)" ]; then
    echo "setup: removing $old (unused for 14 days)"
    rm -rf "$old"
  fi
done
flock -u 9
base() { "$1" -c 'import os, sys; print(os.path.realpath(sys._base_executable))'; }
if [ ! -x .venv/bin/python ] || [ "$(base .venv/bin/python)" != "$(base "$PYTHON")" ]; then
  rm -rf .venv
  "$PYTHON" -m venv --without-pip .venv
fi
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
depsite=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The checkout itself (tickflow's packages, like an editable install) and the cached dependencies.
printf '%s\nimport site; site.addsitedir(%s)\n' "$PWD" "'$depsite'" > "$site/tickflow-deps.pth"
# Commands, run by this venv's python so that they see tickflow and its dependencies.
for tool in tickflow pytest mypy papermill jupyter; do
  printf '#!/bin/sh\nexec "$(dirname "$0")/python" -m %s "$@"\n' "$tool" > ".venv/bin/$tool"
  chmod +x ".venv/bin/$tool"
done
ln -sf "$deps/bin/ruff" .venv/bin/ruff  # a native binary (its `python -m ruff` would find the wrapper)
.venv/bin/python -c 'import tickflow, torch, faust, confluent_kafka' \
  || { echo "setup: .venv cannot import its dependencies; remove $deps and run make again" >&2; exit 1; }
echo "setup: .venv ready (dependencies from $deps)"
