# Shared helpers for scripts/run and scripts/test (source it; do not run it).
# Everything here is idempotent: a second run installs and starts nothing that is there.

# The full packages, not the -nogui ones: those lack Writer's UI definitions, and a warm
# (UNO-driven) LibreOffice then aborts loading any text document with comments. The last
# three draw page images: mutool (PNG, and WebP through cwebp) and poppler's pdftoppm (JPEG).
LIBREOFFICE_PACKAGES=(
  libreoffice-impress libreoffice-writer libreoffice-calc
  fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 python3-uno
  bubblewrap poppler-utils mupdf-tools webp
)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1
  fi
}

# Installs the Debian packages among "$@" that are not installed yet. Returns non-zero when
# something is missing and cannot be installed (no apt, no root).
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || { log "missing packages (no apt-get here): ${missing[*]}"; return 1; }
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || return 1
}

# The -nogui variants conflict with the full packages; apt replaces them only when told to.
replace_nogui_libreoffice() {
  local nogui=()
  for pkg in libreoffice-{core,writer,calc,impress,draw}-nogui; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && nogui+=("$pkg-")
  done
  [ ${#nogui[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || return 1
  log "replacing ${nogui[*]%-} with the full LibreOffice packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || return 1
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    libreoffice-core "${LIBREOFFICE_PACKAGES[@]:0:3}" "${nogui[@]}" >/dev/null
}

# LibreOffice, its fonts and the bubblewrap sandbox every conversion runs in.
ensure_libreoffice() {
  replace_nogui_libreoffice || return 1
  if ! ensure_packages "${LIBREOFFICE_PACKAGES[@]}"; then
    return 1
  fi
  command -v soffice >/dev/null 2>&1 && command -v bwrap >/dev/null 2>&1
}

# Conversions run in a bubblewrap sandbox, which needs user namespaces: say so plainly when
# this machine cannot make one.
check_sandbox() {
  bwrap --unshare-all --unshare-user --die-with-parent --ro-bind /usr /usr \
    --symlink usr/lib /lib --symlink usr/lib64 /lib64 --symlink usr/bin /bin -- /usr/bin/true 2>/dev/null
}

pg_admin_url() { echo "${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"; }

pg_answers() { psql "$(pg_admin_url)" -Atqc 'SELECT 1' >/dev/null 2>&1; }

# Makes sure a Postgres server answers on 127.0.0.1:5432 as `postgres` without a password:
# installs it if missing, starts the cluster if it is down, and (on a fresh Debian install,
# which asks for passwords on TCP) trusts loopback connections.
ensure_postgres() {
  pg_answers && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    ensure_packages postgresql postgresql-client || die "Postgres is not installed and could not be installed"
  fi
  command -v psql >/dev/null 2>&1 || ensure_packages postgresql-client
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $4}' | grep -q online; then
    log "starting Postgres $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || die "could not start Postgres $version"
  fi
  for _ in $(seq 1 30); do pg_answers && return 0; sleep 0.5; done
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if [ -f "$hba" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    log "trusting loopback connections in $hba (test machine)"
    as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  fi
  for _ in $(seq 1 30); do pg_answers && return 0; sleep 0.5; done
  die "Postgres does not answer at $(pg_admin_url)"
}

# Server binaries for the test that runs (and stops) a private Postgres cluster of its own.
# Exports TEST_PG_BIN.
ensure_postgres_binaries() {
  if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
    ensure_packages postgresql || die "the Postgres server binaries (pg_ctl, initdb) could not be installed"
  fi
  TEST_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  export TEST_PG_BIN
}

# A Python virtualenv at $1 (made when missing; installs python3-venv if it has to).
ensure_venv() {
  [ -x "$1/bin/python" ] && return 0
  log "creating $1"
  python3 -m venv "$1" 2>/dev/null || { ensure_packages python3-venv && /usr/bin/python3 -m venv "$1"; } \
    || die "could not create a Python virtualenv (install python3-venv)"
}

# The test suite's Python packages, in target/test-venv (re-installed when the requirements
# file changes). Exports OFFLOAD_TEST_PYTHON for the tests.
ensure_test_venv() {
  local venv=target/test-venv req=tests/requirements.txt
  ensure_venv "$venv"
  if ! cmp -s "$req" "$venv/.requirements"; then
    log "installing the tests' Python packages"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req" || die "pip install -r $req failed"
    cp "$req" "$venv/.requirements"
  fi
  export OFFLOAD_TEST_PYTHON="$PWD/$venv/bin/python"
}

# npm packages of a test directory, installed from its lockfile when missing or changed.
ensure_npm_deps() {
  local dir=$1
  command -v npm >/dev/null 2>&1 || ensure_packages nodejs npm || die "Node.js and npm are needed (apt-get install nodejs npm)"
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing npm packages of $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $dir failed"
  fi
}

# Debian's Chromium for the browser tests (npx playwright install cannot download here).
ensure_chromium() {
  ensure_packages chromium || die "Chromium could not be installed (apt-get install chromium)"
}

# Storage emulators for the S3 and Azure Blob tests, on loopback: moto's standalone server
# (PyPI) and Azurite (npm). Reused when already running; each gets one bucket/container,
# `offload-test`, in which every test works under its own prefix.
MOTO_PORT=${MOTO_PORT:-45001}
AZURITE_PORT=${AZURITE_PORT:-45002}
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
  die "$2 did not start on port $1 (see target/emulators/)"
}

# Process groups of the emulators this run started (stop_emulators ends them).
STARTED_EMULATORS=()

ensure_emulators() {
  mkdir -p target/emulators
  if ! port_open "$MOTO_PORT"; then
    log "starting moto (S3) on 127.0.0.1:$MOTO_PORT"
    setsid nohup target/test-venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" \
      >target/emulators/moto.log 2>&1 < /dev/null &
    STARTED_EMULATORS+=("$!")
    wait_port "$MOTO_PORT" moto
  fi
  curl -s -o /dev/null -X PUT "http://127.0.0.1:$MOTO_PORT/offload-test" || die "cannot create the S3 test bucket"
  if ! port_open "$AZURITE_PORT"; then
    log "starting Azurite (Azure Blob) on 127.0.0.1:$AZURITE_PORT"
    setsid nohup tests/emulators/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$AZURITE_PORT" \
      --location target/emulators/azurite --silent --skipApiVersionCheck --loose --disableTelemetry \
      >target/emulators/azurite.log 2>&1 < /dev/null &
    STARTED_EMULATORS+=("$!")
    wait_port "$AZURITE_PORT" Azurite
  fi
  target/test-venv/bin/python - "$AZURITE_PORT" "$AZURITE_KEY" <<'PY' || die "cannot create the Azure test container"
import sys
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient
port, key = sys.argv[1], sys.argv[2]
conn = f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
try:
    BlobServiceClient.from_connection_string(conn).create_container("offload-test")
except ResourceExistsError:
    pass
PY
  export TEST_S3_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
  export TEST_AZBLOB_ENDPOINT="http://127.0.0.1:$AZURITE_PORT/devstoreaccount1"
  # The emulators' credentials (moto accepts any; Azurite's account is well known).
  export AWS_ACCESS_KEY_ID=offload-test AWS_SECRET_ACCESS_KEY=offload-test
  export AZURE_STORAGE_ACCOUNT_NAME=devstoreaccount1 AZURE_STORAGE_ACCOUNT_KEY="$AZURITE_KEY"
}

# Stops the emulators this run started (each leads its own session, so the whole group goes);
# ones that were already running are left alone, and KEEP_EMULATORS=1 keeps them all.
stop_emulators() {
  [ "${KEEP_EMULATORS:-0}" = 1 ] && return 0
  for pid in "${STARTED_EMULATORS[@]}"; do
    kill -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
  done
}
