#!/usr/bin/env bash
# The project's test command (README "Testing"; .ci/run calls it).
# Installs the real peers the integration tests talk to, then runs format, lint and tests.
# A peer that cannot be installed fails the run: the tests never skip a missing peer.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package providing it
declare -A peers=(
  [nc]=netcat-openbsd
  [socat]=socat
  [ncat]=ncat
  [unshare]=util-linux
  [sha256sum]=coreutils
  [python3]=python3
  [dnsmasq]=dnsmasq-base
  [dig]=bind9-dnsutils
  [knotd]=knot
  [dnsdist]=dnsdist
  [ping]=iputils-ping
  [nft]=nftables
  [swaks]=swaks
  [xinetd]=xinetd
  [nginx]=nginx-light
  [curl]=curl
  [brotli]=brotli
  [openssl]=openssl
  [ss]=iproute2
  [script]=util-linux
  [setpriv]=util-linux
  [nsenter]=util-linux
  [ip]=iproute2
  [ipcalc]=ipcalc
  [ipcalc-ng]=ipcalc-ng
  [tinyproxy]=tinyproxy
  [danted]=dante-server
  [microsocks]=microsocks
  [tshark]=tshark
  [capinfos]=tshark
  [fping]=fping
)
missing=()
for cmd in "${!peers[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${peers[$cmd]}")
done
# Debian's nc may be the traditional one, which lacks -N; the tests need OpenBSD's.
if command -v nc >/dev/null 2>&1 && ! nc -h 2>&1 | grep -qi -- '-N.*shutdown'; then
  missing+=(netcat-openbsd)
fi
# aiosmtpd (the SMTP peer) is a Python module of Debian's own python3, not a command.
if ! /usr/bin/python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  missing+=(python3-aiosmtpd)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing test peers: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
cargo test --all-targets

# Every fuzz target for 10 s (fuzz/README.md): a crash, leak or hang fails the run. run.sh
# installs cargo-fuzz with `cargo install --locked` when missing; the stable toolchain builds
# the targets with RUSTC_BOOTSTRAP=1.
fuzz/run.sh 10
