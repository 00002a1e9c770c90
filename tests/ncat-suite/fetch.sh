#!/usr/bin/env bash
# Fetch Nmap's Ncat test suite (ncat/test/ of Nmap 7.93) into tests/ncat-suite/nmap-test/.
#
# The suite is Nmap's code under the Nmap Public Source License (NPSL, GPLv2-based), so it is
# not committed to this MIT/Apache repository: it is fetched, checked and kept out of git
# (.gitignore). Nmap 7.93 is the version Debian bookworm ships as `ncat`, so the same suite
# also runs against the real ncat (`run.sh --ncat`) for a baseline on the same machine.
#
# Sources, first that works:
#   NCAT_SUITE_SRC=DIR   a directory holding ncat-test.pl (e.g. an Nmap checkout's ncat/test)
#   Debian's source tarball of nmap 7.93, checked against its SHA-256 (from the .dsc of
#   nmap 7.93+dfsg1-1), from NCAT_SUITE_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
dest="$here/nmap-test"
tarball=nmap_7.93+dfsg1.orig.tar.xz
sha256=e35fef528f875ad7307e14aca50607303e378ffc66b801165332a28de8fca914
mirror=${NCAT_SUITE_MIRROR:-http://deb.debian.org/debian}

if [[ -f "$dest/ncat-test.pl" ]]; then
    echo "fetch.sh: $dest already holds the suite"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -n "${NCAT_SUITE_SRC:-}" ]]; then
    [[ -f "$NCAT_SUITE_SRC/ncat-test.pl" ]] || {
        echo "fetch.sh: NCAT_SUITE_SRC=$NCAT_SUITE_SRC holds no ncat-test.pl" >&2
        exit 1
    }
    cp -r "$NCAT_SUITE_SRC" "$tmp/test"
else
    url="$mirror/pool/main/n/nmap/$tarball"
    echo "fetch.sh: downloading $url"
    curl -fsS --max-time 300 -o "$tmp/$tarball" "$url" || {
        echo "fetch.sh: could not download $url" >&2
        echo "hint: set NCAT_SUITE_MIRROR to a Debian mirror, or NCAT_SUITE_SRC to a copy of Nmap's ncat/test" >&2
        exit 1
    }
    echo "$sha256  $tmp/$tarball" | sha256sum -c --quiet - || {
        echo "fetch.sh: $tarball does not have the expected SHA-256; not using it" >&2
        exit 1
    }
    tar -xJf "$tmp/$tarball" -C "$tmp" --wildcards 'nmap-7.93/ncat/test/*' 'nmap-7.93/LICENSE'
    mv "$tmp/nmap-7.93/ncat/test" "$tmp/test"
    cp "$tmp/nmap-7.93/LICENSE" "$tmp/test/NMAP-LICENSE"
fi
mv "$tmp/test" "$dest"
echo "fetch.sh: suite in $dest"
