#!/usr/bin/env bash
# `make demo`: audit the ops guide's October 19, 2025 snapshot on a local AWS
# endpoint, exactly as a scheduled CI run would audit production.
# Starts moto on 127.0.0.1, seeds it, runs playbooks/audit_jobs.yml, and stops
# what it started, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
state_dir=$(mktemp -d)
trap '$python tools/local_aws.py stop --state-dir "$state_dir"; rm -rf "$state_dir"' EXIT

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
AWS_ENDPOINT_URL=$($python tools/local_aws.py start --state-dir "$state_dir")
export AWS_ENDPOINT_URL
echo "Local AWS endpoint (moto) at $AWS_ENDPOINT_URL"
$python tools/seed_jobs.py snapshot guide-2025-10-19 --endpoint-url "$AWS_ENDPOINT_URL" >/dev/null
echo "Seeded the ops guide's snapshot of October 19, 2025 (60 jobs)."

# The guide's report was taken on its day; audit as of that evening so the two
# pending jobs are as fresh as they were then. Breached thresholds are shown,
# not fatal: in CI (audit_fail_on_breach=true, the default) this run goes red.
.venv/bin/ansible-playbook playbooks/audit_jobs.yml \
  -e audit_now=2025-10-19T18:00:00Z -e audit_fail_on_breach=false "$@"
echo "Reports written to reports/job-audit.{txt,json} and reports/job-audit-junit.xml"
echo "The endpoint is stopped again. To try the other commands on the same data: make sandbox"
