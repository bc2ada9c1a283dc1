#!/usr/bin/env bash
# Puts the back end on PostgreSQL with the az CLI, the mirror of infra/modules/database.bicep, on
# what create.sh made: an Azure Database for PostgreSQL flexible server with public network
# access disabled and no password at all (Microsoft Entra authentication only, the back end's
# system-assigned identity its Entra administrator), TLS 1.2+ required, a private endpoint (group
# postgresqlServer) in the private-endpoint subnet, the privatelink.postgres.database.azure.com
# zone linked to the VNet with a zone group; then the back end VNet-integrated (its calls to the
# database's private address go through the VNet, and it resolves through the VNet's DNS) and
# pointed at the server by its public name with DB_AUTH=entra. Safe to run again; the server
# and its data stay until you delete them.
#
# Usage: database.sh [--dry-run] [--resource-group RG] [--location LOC] [--prefix PREFIX]
#   --dry-run   print every az command, one per line, and run nothing
# Environment: LOCKDOWN_DB_SKU (Standard_B1ms), LOCKDOWN_DB_TIER (Burstable),
#   LOCKDOWN_DB_NAME (items).
# Flags are those of az CLI 2.67 and later (--microsoft-entra-auth, microsoft-entra-admin).
# Next: smoke.sh (the suite gains the data-tier checks when DATABASE_HOST is set).

set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_common "$@"
if [[ ${#REST_ARGS[@]} -gt 0 ]]; then
  die_usage "unknown argument: ${REST_ARGS[0]}"
fi

DB_SKU="${LOCKDOWN_DB_SKU:-Standard_B1ms}"
DB_TIER="${LOCKDOWN_DB_TIER:-Burstable}"
DB_NAME="${LOCKDOWN_DB_NAME:-items}"
[[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die_usage "LOCKDOWN_DB_NAME must be a plain PostgreSQL name: '$DB_NAME'"
readonly DB_SERVER="${PREFIX}-pg"
readonly DB_HOST="${DB_SERVER}.postgres.database.azure.com"
readonly DB_ZONE="privatelink.postgres.database.azure.com"
readonly DB_PE_NAME="pe-${DB_SERVER}"

require_login

# The server: private only, Entra only (no administrator password exists at all).
if az_missing postgres flexible-server show --resource-group "$RESOURCE_GROUP" --name "$DB_SERVER"; then
  az_do postgres flexible-server create --resource-group "$RESOURCE_GROUP" --name "$DB_SERVER" \
    --location "$LOCATION" --tier "$DB_TIER" --sku-name "$DB_SKU" --version 16 --storage-size 32 \
    --public-access Disabled --microsoft-entra-auth Enabled --password-auth Disabled --yes
fi
az_do postgres flexible-server parameter set --resource-group "$RESOURCE_GROUP" --server-name "$DB_SERVER" \
  --name require_secure_transport --value on
az_do postgres flexible-server parameter set --resource-group "$RESOURCE_GROUP" --server-name "$DB_SERVER" \
  --name ssl_min_protocol_version --value TLSv1.2
if az_missing postgres flexible-server db show --resource-group "$RESOURCE_GROUP" --server-name "$DB_SERVER" --database-name "$DB_NAME"; then
  az_do postgres flexible-server db create --resource-group "$RESOURCE_GROUP" --server-name "$DB_SERVER" \
    --database-name "$DB_NAME"
fi

# The back end's identity is the server's Entra administrator: its role is named after the app
# (a system-assigned identity's name), which is DATABASE_URL's user.
principal_id="$(az_value "<${BACKEND_NAME}-principal-id>" webapp identity assign --resource-group "$RESOURCE_GROUP" \
  --name "$BACKEND_NAME" --query principalId --output tsv)"
admins="$(az_value 0 postgres flexible-server microsoft-entra-admin list --resource-group "$RESOURCE_GROUP" \
  --server-name "$DB_SERVER" --query "[?objectId=='${principal_id}'] | length(@)" --output tsv)"
if [[ "$admins" == "0" ]]; then
  az_do postgres flexible-server microsoft-entra-admin create --resource-group "$RESOURCE_GROUP" \
    --server-name "$DB_SERVER" --display-name "$BACKEND_NAME" --object-id "$principal_id" --type ServicePrincipal
fi

# Private endpoint, zone, link, zone group: the public name resolves privately inside the VNet.
server_id="$(az_value "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.DBforPostgreSQL/flexibleServers/${DB_SERVER}" \
  postgres flexible-server show --resource-group "$RESOURCE_GROUP" --name "$DB_SERVER" --query id --output tsv)"
private_endpoint_in_zone "$DB_PE_NAME" "$server_id" postgresqlServer "$DB_ZONE" privatelink-postgres-database-azure-com

# The back end leaves through the integration subnet (apps of one plan share it), all traffic.
subnet_id="$(integration_subnet_id)"
current_subnet="$(az_value "" webapp show --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --query virtualNetworkSubnetId --output tsv)"
if [[ "${current_subnet,,}" != "${subnet_id,,}" ]]; then
  az_do webapp vnet-integration add --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
    --vnet "$VNET_NAME" --subnet "$INTEGRATION_SUBNET"
fi
az_do webapp config set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" --vnet-route-all-enabled true

# No password anywhere: the identity's token is the password, TLS verifies the public name.
az_do webapp config appsettings set --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME" \
  --settings "DATABASE_URL=postgres://${BACKEND_NAME}@${DB_HOST}:5432/${DB_NAME}" DB_AUTH=entra
az_do webapp restart --resource-group "$RESOURCE_GROUP" --name "$BACKEND_NAME"

log "the back end is on PostgreSQL at ${DB_HOST} (private endpoint, no password)"
log "next: DATABASE_HOST=${DB_HOST} smoke.sh"
