#!/usr/bin/env bash
# First start of the PostgreSQL container only: one database and one login role per
# service. A role owns its database and can connect to nothing else (CONNECT is revoked
# from PUBLIC), so a compromised service cannot read another service's events or vault.
set -euo pipefail

create() {  # service password
  local service="$1" password="$2"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v role="$service" -v db="jingmin_$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"db" OWNER :"role";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"role";
SQL
}

create intake "$INTAKE_DB_PASSWORD"
create visits "$VISITS_DB_PASSWORD"
create complaints "$COMPLAINTS_DB_PASSWORD"
create metrics "$METRICS_DB_PASSWORD"
