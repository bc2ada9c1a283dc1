// Azure Application Gateway (Standard_v2) in front of the front end: the documented alternative
// to Front Door (docs/app-gateway.md). A Standard static public IP with a DNS label, the front
// end's default host name as the one backend, HTTPS to it on 443 with the host name taken from
// the backend address (App Service routes by it, and its certificate matches it), a health probe
// on /healthz, an HTTP listener on 80 and a basic routing rule. The front end allows only the
// gateway's subnet (frontend.bicep, vnetSubnetResourceId; the subnet carries the Microsoft.Web
// service endpoint, network.bicep).
// Standard_v2, not WAF_v2: the same footing as the Front Door Standard profile of front-door.bicep
// (no managed WAF rules), at about half the fixed price; WAF_v2 is a SKU change plus a firewall
// policy (docs/app-gateway.md). Production needs an HTTPS listener with a Key Vault certificate,
// which a reference deployment cannot invent: the listener here is plain HTTP.

@description('Azure region (a gateway is regional)')
param location string

@description('Tags for every resource')
param tags object

@description('Gateway name')
param name string

@description('Public IP name')
param publicIpName string

@description('DNS label of the public IP: <label>.<region>.cloudapp.azure.com')
param dnsLabel string

@description('The gateway\'s subnet (network.bicep, snet-appgw)')
param subnetId string

@description('The front end\'s default host name')
param backendHostName string

@minValue(0)
@maxValue(125)
@description('Autoscale: fewest instances (0: scale to nothing when idle)')
param minCapacity int = 0

@minValue(1)
@maxValue(125)
@description('Autoscale: most instances')
param maxCapacity int = 2

var frontendIpName = 'public'
var httpPortName = 'port-80'
var poolName = 'frontend'
var settingsName = 'frontend-https'
var probeName = 'frontend-healthz'
var listenerName = 'http'

resource publicIp 'Microsoft.Network/publicIPAddresses@2024-05-01' = {
  name: publicIpName
  location: location
  tags: tags
  // Application Gateway v2 takes a Standard SKU, static address only.
  sku: {
    name: 'Standard'
    tier: 'Regional'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
    dnsSettings: {
      domainNameLabel: dnsLabel
    }
  }
}

resource gateway 'Microsoft.Network/applicationGateways@2024-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'Standard_v2'
      tier: 'Standard_v2'
    }
    autoscaleConfiguration: {
      minCapacity: minCapacity
      maxCapacity: maxCapacity
    }
    enableHttp2: true
    // For the production HTTPS listener: TLS 1.2 and later (CustomV2 also offers TLS 1.3), and for
    // TLS 1.2 forward-secret AES-GCM suites only (the default policy of older gateways admits TLS 1.0).
    sslPolicy: {
      policyType: 'CustomV2'
      minProtocolVersion: 'TLSv1_2'
      cipherSuites: [
        'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'
        'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'
        'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384'
        'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'
      ]
    }
    gatewayIPConfigurations: [
      {
        name: 'gateway'
        properties: {
          subnet: {
            id: subnetId
          }
        }
      }
    ]
    frontendIPConfigurations: [
      {
        name: frontendIpName
        properties: {
          publicIPAddress: {
            id: publicIp.id
          }
        }
      }
    ]
    frontendPorts: [
      {
        name: httpPortName
        properties: {
          port: 80
        }
      }
    ]
    backendAddressPools: [
      {
        name: poolName
        properties: {
          backendAddresses: [
            {
              fqdn: backendHostName
            }
          ]
        }
      }
    ]
    // HTTPS to the front end (it is httpsOnly) with its own host name: App Service routes by the
    // Host header, and the gateway checks the app's certificate against that name.
    backendHttpSettingsCollection: [
      {
        name: settingsName
        properties: {
          port: 443
          protocol: 'Https'
          pickHostNameFromBackendAddress: true
          cookieBasedAffinity: 'Disabled'
          requestTimeout: 60
          probe: {
            id: resourceId('Microsoft.Network/applicationGateways/probes', name, probeName)
          }
        }
      }
    ]
    // GET /healthz with the backend settings' host name: the front end's own name, not the
    // gateway's address (App Service would answer 404 for an unknown host).
    probes: [
      {
        name: probeName
        properties: {
          protocol: 'Https'
          path: '/healthz'
          pickHostNameFromBackendHttpSettings: true
          interval: 30
          timeout: 30
          unhealthyThreshold: 3
          match: {
            statusCodes: [
              '200'
            ]
          }
        }
      }
    ]
    httpListeners: [
      {
        name: listenerName
        properties: {
          frontendIPConfiguration: {
            id: resourceId('Microsoft.Network/applicationGateways/frontendIPConfigurations', name, frontendIpName)
          }
          frontendPort: {
            id: resourceId('Microsoft.Network/applicationGateways/frontendPorts', name, httpPortName)
          }
          protocol: 'Http'
        }
      }
    ]
    requestRoutingRules: [
      {
        name: 'frontend'
        properties: {
          ruleType: 'Basic'
          priority: 100
          httpListener: {
            id: resourceId('Microsoft.Network/applicationGateways/httpListeners', name, listenerName)
          }
          backendAddressPool: {
            id: resourceId('Microsoft.Network/applicationGateways/backendAddressPools', name, poolName)
          }
          backendHttpSettings: {
            id: resourceId('Microsoft.Network/applicationGateways/backendHttpSettingsCollection', name, settingsName)
          }
        }
      }
    ]
  }
}

output name string = gateway.name
output publicIpAddress string = publicIp.properties.ipAddress
output fqdn string = publicIp.properties.dnsSettings.fqdn
// Plain HTTP until a production HTTPS listener is added.
output url string = 'http://${publicIp.properties.dnsSettings.fqdn}'
