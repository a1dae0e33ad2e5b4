#!/usr/bin/env bash
# Creates deploy/compose/.env and deploy/compose/secrets/* with random values, once.
# Existing values are kept: re-running never rotates a password behind a running stack
# (rotation is a runbook step: docs/operations/keys-and-erasure.md).
set -euo pipefail
cd "$(dirname "$0")"
umask 077

random() { head -c 32 /dev/urandom | base64 | tr -d '/+=\n' | head -c 32; }

touch .env
add() {  # NAME VALUE: append unless already set
  grep -q "^$1=" .env || echo "$1=$2" >> .env
}
# Containers are named jingmin-<service>-<n> whatever the folder is called.
add COMPOSE_PROJECT_NAME jingmin
add POSTGRES_PASSWORD "$(random)"
add INTAKE_DB_PASSWORD "$(random)"
add VISITS_DB_PASSWORD "$(random)"
add COMPLAINTS_DB_PASSWORD "$(random)"
add METRICS_DB_PASSWORD "$(random)"
# Wraps every per-person data key: losing it loses every person's data; keep a copy in
# the bureau's secret store (docs/operations/backup-restore.md).
add JINGMIN_MASTER_KEY "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"

mkdir -p secrets
for name in grafana-admin partner-hotline-12345 partner-gov-statistics; do
  [ -s "secrets/$name.password" ] || random > "secrets/$name.password"
done
echo "deploy/compose/.env and deploy/compose/secrets/ are ready"
