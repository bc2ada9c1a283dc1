// The virtual network: the front end's integration subnet (delegated to App Service plans)
// and the subnet that holds the back end's private endpoint.
// The Microsoft.Web service endpoint sits on the integration subnet only in service-endpoint mode.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('Virtual network name')
param vnetName string

@description('Virtual network address space')
param vnetAddressPrefix string

@description('Integration subnet CIDR: the front end leaves through it')
param integrationSubnetPrefix string

@description('Private-endpoint subnet CIDR')
param privateEndpointSubnetPrefix string

@description('Add the Microsoft.Web service endpoint to the integration subnet')
param enableWebServiceEndpoint bool

var integrationSubnetName = 'snet-integration'
var privateEndpointSubnetName = 'snet-private-endpoints'
var webServiceEndpoints = enableWebServiceEndpoint ? [
  {
    service: 'Microsoft.Web'
  }
] : []

// No custom rules: the default rules allow traffic inside the VNet. A rule that denies
// outbound 443 here is exactly what makes the front end's calls time out after 21 s.
resource integrationNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${integrationSubnetName}-${vnetName}'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource privateEndpointNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = {
  name: 'nsg-${privateEndpointSubnetName}-${vnetName}'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        vnetAddressPrefix
      ]
    }
    subnets: [
      {
        name: integrationSubnetName
        properties: {
          addressPrefix: integrationSubnetPrefix
          networkSecurityGroup: {
            id: integrationNsg.id
          }
          delegations: [
            {
              name: 'webServerFarms'
              properties: {
                serviceName: 'Microsoft.Web/serverFarms'
              }
            }
          ]
          serviceEndpoints: webServiceEndpoints
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: privateEndpointNsg.id
          }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

output vnetId string = vnet.id
output vnetName string = vnet.name
output integrationSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
output integrationSubnetPrefix string = integrationSubnetPrefix
