#!/usr/bin/env bash
# Set up everything ctiserver needs on a fresh Debian machine (run as root):
# system packages, PostgreSQL running with a `test` database, the Python venv
# with ctiserver installed, and the sandbox Asterisk 22 chroot.
# Safe to run again: every step checks before it acts. Any failure stops it with a message.
# SETUP_STEPS picks steps (default: all of "system kannel postgres python asterisk").
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*"; }

step_system() {
# kannel + kannel-extras: the SMS gateway (bearerbox, smsbox) and its fake SMSC, started by the SMS tests
# opus-tools: opusenc compresses call recordings (docs/qc.md), opusdec reads them back in the tests
APT_PKGS=(debootstrap espeak-ng sox opus-tools chromium chromium-driver fonts-noto-cjk graphviz procps iproute2 kannel kannel-extras)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ! command -v pg_ctlcluster >/dev/null 2>&1; then missing+=(postgresql); fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
}

# --- Kannel: the tests start their own bearerbox/smsbox/fakesmsc (own config, own ports); check they are there
step_kannel() {
for bin in /usr/sbin/bearerbox /usr/sbin/smsbox /usr/lib/kannel/test/fakesmsc; do
  [ -x "$bin" ] || { echo "[setup] FAILED: $bin is missing (Debian packages kannel, kannel-extras)" >&2; exit 1; }
done
log "kannel: bearerbox, smsbox and fakesmsc present"
}

# --- PostgreSQL on 127.0.0.1:5432 with trust auth for local test use -------
step_postgres() {
ver=$(ls /etc/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h 2>/dev/null | grep -q " main "; then
  pg_createcluster "$ver" main >/dev/null
fi
hba=/etc/postgresql/$ver/main/pg_hba.conf
if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  log "allowing trust auth on loopback in $hba"
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1 || true
fi
if ! pg_lsclusters -h | grep -q " main .*online"; then
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
fi
for i in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE test"
}

# --- Python venv --------------------------------------------------------
step_python() {
PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "Python >= 3.11 is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Pinned by constraints.txt; any failure stops the setup here with pip's own message.
log "installing ctiserver and its test tools into .venv (pinned by constraints.txt)"
if ! .venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'; then
  echo "[setup] FAILED: pip could not install ctiserver's dependencies (see pip's message above)" >&2
  exit 1
fi
.venv/bin/python -c 'import ctiserver, panoramisk, sqlalchemy, asyncpg, aiohttp, pyttsx3' \
  || { echo "[setup] FAILED: Python dependencies did not install" >&2; exit 1; }
}

# --- the sandbox Asterisk chroot (Debian sid's Asterisk 22, ~1 minute the first time) ---
step_asterisk() {
log "preparing the sandbox Asterisk"
.venv/bin/python -c 'from ctiserver.sandbox.chroot import ensure_chroot; print("[setup] asterisk chroot:", ensure_chroot(None))'
}

for step in ${SETUP_STEPS:-system kannel postgres python asterisk}; do
  "step_$step"
done
log "done"
