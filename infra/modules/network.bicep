// The virtual network: the front end's integration subnet (delegated to App Service plans)
// and the subnet that holds the back end's private endpoint.
// The Microsoft.Web service endpoint sits on the integration subnet only in service-endpoint mode.
// With Application Gateway in front of the front end (front = 'appGateway'), a third subnet holds
// the gateway (a v2 gateway wants a subnet of its own, no delegation), with the Microsoft.Web
// service endpoint: the front end's access restriction names this subnet, and App Service sees
// the gateway's calls as coming from it only through a service endpoint.

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

@description('Application Gateway subnet CIDR (used when enableAppGatewaySubnet)')
param appGatewaySubnetPrefix string = '10.20.3.0/24'

@description('Add the Application Gateway subnet (front = appGateway)')
param enableAppGatewaySubnet bool = false

var integrationSubnetName = 'snet-integration'
var privateEndpointSubnetName = 'snet-private-endpoints'
var appGatewaySubnetName = 'snet-appgw'
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

// The gateway's subnet: Application Gateway v2 needs inbound 65200-65535 from GatewayManager
// (its control plane; the default rules already admit AzureLoadBalancer) and the internet on
// the listeners' ports: 80 for the HTTP listener made here, 443 for a production HTTPS listener.
resource appGatewayNsg 'Microsoft.Network/networkSecurityGroups@2024-05-01' = if (enableAppGatewaySubnet) {
  name: 'nsg-${appGatewaySubnetName}-${vnetName}'
  location: location
  tags: tags
  properties: {
    securityRules: [
      {
        name: 'allow-gateway-manager'
        properties: {
          priority: 100
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'GatewayManager'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '65200-65535'
        }
      }
      {
        name: 'allow-internet-http'
        properties: {
          priority: 110
          direction: 'Inbound'
          access: 'Allow'
          protocol: 'Tcp'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRanges: [
            '80'
            '443'
          ]
        }
      }
    ]
  }
}

// The integration and private-endpoint subnets, always present (indexes 0 and 1 in the outputs).
var baseSubnets = [
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

var appGatewaySubnets = enableAppGatewaySubnet ? [
  {
    name: appGatewaySubnetName
    properties: {
      addressPrefix: appGatewaySubnetPrefix
      networkSecurityGroup: {
        id: appGatewayNsg.id
      }
      serviceEndpoints: [
        {
          service: 'Microsoft.Web'
        }
      ]
    }
  }
] : []

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
    subnets: concat(baseSubnets, appGatewaySubnets)
  }
}

output vnetId string = vnet.id
output vnetName string = vnet.name
output integrationSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id
output integrationSubnetPrefix string = integrationSubnetPrefix
// Empty without the gateway subnet.
output appGatewaySubnetId string = enableAppGatewaySubnet ? vnet.properties.subnets[2].id : ''
