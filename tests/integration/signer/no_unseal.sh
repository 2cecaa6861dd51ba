#!/bin/sh
# Asserts that coffer-api contains no symbol of the unseal/decrypt path:
# only coffer-signer may ever open a sealed key (DESIGN.md §1). Checks the
# static and dynamic symbol tables, defined and undefined alike, of every
# FILE given: the coffer-api binary and its core library (which holds
# every coffer-api object, signer_client.o included, whether main() uses it
# yet or not). --control SIGNER first checks that the same pattern does
# find those symbols in coffer-signer, so a broken nm cannot pass.
# Usage: no_unseal.sh [--control path/to/coffer-signer] FILE...
set -eu
pattern=' (keystore_|kek_ring_|sign_digest|sign_address_from_secret|crypto_aead_xchacha20poly1305_ietf_decrypt|secp256k1_ecdsa_sign|secp256k1_ec_pubkey_create|secp256k1_ec_seckey)'

symbols() {
    { nm -A "$1" 2>/dev/null || true; nm -D -A "$1" 2>/dev/null || true; }
}

if [ "${1:-}" = --control ]; then
    control=$(symbols "$2" | grep -cE "$pattern" || true)
    [ "$control" -ge 5 ] || { echo "no_unseal: control failed: the pattern finds only $control symbols in $2" >&2; exit 1; }
    echo "no_unseal: control: $control unseal/signing symbols found in $(basename "$2")"
    shift 2
fi
[ $# -gt 0 ] || { echo "usage: no_unseal.sh [--control SIGNER] FILE..." >&2; exit 2; }
rc=0
for f in "$@"; do
    [ -f "$f" ] || { echo "no_unseal: $f does not exist" >&2; exit 1; }
    syms=$(symbols "$f")
    [ -n "$syms" ] || { echo "no_unseal: nm found no symbols in $f" >&2; exit 1; }
    bad=$(printf '%s\n' "$syms" | grep -E "$pattern" || true)
    if [ -n "$bad" ]; then
        echo "no_unseal: $f contains unseal/signing symbols:" >&2
        printf '%s\n' "$bad" >&2
        rc=1
    else
        echo "no_unseal: $(printf '%s\n' "$syms" | wc -l) symbols of $(basename "$f") checked; none of the unseal path"
    fi
done
exit $rc
