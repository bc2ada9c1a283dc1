// The back end's PostgreSQL: an Azure Database for PostgreSQL flexible server with public network
// access Disabled and no password at all (Microsoft Entra authentication only, the back end's
// managed identity its Entra administrator), reached through a private endpoint (group
// `postgresqlServer`) in the private-endpoint subnet. The privatelink.postgres.database.azure.com
// zone, linked to the VNet with a zone group, makes the server's public name
// (NAME.postgres.database.azure.com) resolve to the private address inside the VNet: the back end
// connects by that name, so the certificate's name matches and TLS verifies (verify-full).
// TLS is required and at least 1.2 (server parameters, set explicitly rather than left to defaults).
// Security values are literals so checkov and infra/checks/test_security_props.py can judge them.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@minLength(3)
@maxLength(63)
@description('Server name: its public name is NAME.postgres.database.azure.com')
param serverName string

@description('The database the back end uses')
param databaseName string

@description('Object (principal) ID of the back end\'s managed identity: the server\'s Entra administrator')
param administratorPrincipalId string

@description('Name of that identity: the PostgreSQL role the back end logs in as (DATABASE_URL\'s user)')
param administratorName string

@description('Compute: a Burstable B1ms is enough for the reference app')
param skuName string = 'Standard_B1ms'

@description('Tier of skuName')
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param skuTier string = 'Burstable'

@description('Private-endpoint subnet resource ID')
param privateEndpointSubnetId string

@description('Virtual network resource ID (linked to the privatelink zone)')
param vnetId string

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: serverName
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    // Geo-redundant backups are off: they double the storage cost of a reference deployment; turn
    // them on for production data.
    version: '16'
    storage: {
      storageSizeGB: 32
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Disabled'
    }
    authConfig: {
      activeDirectoryAuth: 'Enabled'
      passwordAuth: 'Disabled'
      tenantId: tenant().tenantId
    }
  }
}

// A flexible server takes one change at a time: each child waits for the one before it.
resource administrator 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = {
  parent: server
  name: administratorPrincipalId
  properties: {
    principalType: 'ServicePrincipal'
    principalName: administratorName
    tenantId: tenant().tenantId
  }
}

resource requireTls 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'require_secure_transport'
  properties: {
    value: 'on'
    source: 'user-override'
  }
  dependsOn: [
    administrator
  ]
}

resource minimumTls 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'ssl_min_protocol_version'
  properties: {
    value: 'TLSv1.2'
    source: 'user-override'
  }
  dependsOn: [
    requireTls
  ]
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    minimumTls
  ]
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2024-05-01' = {
  name: 'pe-${serverName}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: 'pe-${serverName}'
        properties: {
          privateLinkServiceId: server.id
          groupIds: [
            'postgresqlServer'
          ]
        }
      }
    ]
  }
}

resource privateDnsZone 'Microsoft.Network/privateDnsZones@2024-06-01' = {
  name: 'privatelink.postgres.database.azure.com'
  location: 'global'
  tags: tags
}

resource privateDnsZoneLink 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2024-06-01' = {
  parent: privateDnsZone
  name: 'link-${last(split(vnetId, '/'))}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnetId
    }
  }
}

resource privateDnsZoneGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-05-01' = {
  parent: privateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'privatelink-postgres-database-azure-com'
        properties: {
          privateDnsZoneId: privateDnsZone.id
        }
      }
    ]
  }
}

// The public name, never the private address or the privatelink name: the certificate covers
// NAME.postgres.database.azure.com only.
output host string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
output serverName string = server.name
