#!/usr/bin/env bash
# `make sandbox` / `make sandbox-stop`: a local AWS endpoint (moto on 127.0.0.1) that stays up,
# seeded with the ops guide's October 19, 2025 snapshot, so every command of the README (the audit
# with -v, the cleanup procedures with --check --diff, restore) can be tried on it.
#
#   tools/sandbox.sh start   start and seed (a running sandbox is left as it is), write .local-aws/env
#   tools/sandbox.sh stop    stop it; its data goes with it
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
state_dir=.local-aws
env_file=$state_dir/env

case "${1:-}" in
  start)
    if url=$($python tools/local_aws.py url --state-dir "$state_dir" 2>/dev/null); then
      echo "The sandbox is already running at $url (make sandbox-stop to stop it)."
    else
      url=$($python tools/local_aws.py start --state-dir "$state_dir")
      AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
        $python tools/seed_jobs.py snapshot guide-2025-10-19 --endpoint-url "$url" >/dev/null
      echo "Sandbox: a local AWS endpoint at $url, seeded with the ops guide's snapshot (60 jobs, their audio, users' keys)."
    fi
    # What a shell needs to run the README's commands against it: the venv's tools first on PATH,
    # the endpoint, and moto's fake credentials (never real ones).
    cat >"$env_file" <<ENV
export PATH="$PWD/.venv/bin:\$PATH"
export AWS_ENDPOINT_URL="$url"
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
ENV
    cat <<TXT

In your shell:   source $env_file
Then, e.g.:      ansible-playbook playbooks/audit_jobs.yml -v
                 ansible-playbook playbooks/cleanup_jobs.yml --check --diff -e '{"cleanup_jobs_categories": ["legacy_encryption"], "cleanup_jobs_delete_audio": true}'
Stop it with:    make sandbox-stop
TXT
    ;;
  stop)
    $python tools/local_aws.py stop --state-dir "$state_dir"
    rm -f "$env_file"
    echo "Sandbox stopped."
    ;;
  *)
    echo "usage: tools/sandbox.sh start|stop" >&2
    exit 2
    ;;
esac
