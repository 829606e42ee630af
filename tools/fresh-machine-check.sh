#!/usr/bin/env bash
# Proves the README's set-up on a root that has only what its commands install: a clean clone of
# HEAD runs `make demo`, then `make test`'s set-up, linters and every test that needs no target
# host, inside a throwaway Debian container (the test-host image: python3 and little else; no venv
# support, no ffmpeg, no pip cache). Host tests need podman inside it and stay out; they run in CI.
#
# Usage: tools/fresh-machine-check.sh [--suite bookworm|trixie] [-- PYTEST ARGS]
# Prints the timings of each step; exits non-zero on the first failure.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suite=bookworm
if [ "${1:-}" = "--suite" ]; then suite="$2"; shift 2; fi
[ "${1:-}" = "--" ] && shift
pytest_args=("$@")
[ ${#pytest_args[@]} -gt 0 ] || pytest_args=(-m "not hosts" -q -n 2 --dist loadfile)

export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo_root/tests/hosts/containers.conf}"
image="$("$repo_root/tools/build-host-image.sh" --suite "$suite")"
work="$(mktemp -d /var/tmp/panzoto-ops-fresh.XXXXXX)"
trap 'rm -rf --one-file-system "$work"' EXIT
git -C "$repo_root" bundle create -q "$work/repo.bundle" HEAD

# The machine's CA bundle: HTTPS to the package registries may pass a TLS-intercepting egress.
ca=/etc/ssl/certs/ca-certificates.crt
printf -v quoted_args '%q ' "${pytest_args[@]}"
podman run --rm --network host --name "panzoto-ops-fresh-$$" \
  -v "$work:/work:Z" -v "$ca:/etc/ssl/host-ca.crt:ro" \
  -e SSL_CERT_FILE=/etc/ssl/host-ca.crt -e PIP_CERT=/etc/ssl/host-ca.crt -e REQUESTS_CA_BUNDLE=/etc/ssl/host-ca.crt \
  -e PIP_NO_CACHE_DIR=1 -e CI=true \
  "$image" bash -euo pipefail -c "
    step() { local start=\$SECONDS; \"\$@\"; echo \"fresh-machine-check: '\$*' took \$((SECONDS - start)) s\" >&2; }
    # What the README assumes a fresh Debian machine has: make and git beside python3.
    step sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make git >/dev/null'
    git clone -q /work/repo.bundle /work/repo && cd /work/repo
    step make demo
    step make venv system-packages lint
    step .venv/bin/pytest $quoted_args
  "
