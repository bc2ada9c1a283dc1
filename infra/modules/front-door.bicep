// Azure Front Door (Standard) in front of the front end: an endpoint, an origin group whose
// health probe asks the front end's /healthz, the front end as the origin (its own host name as
// the origin host header, so App Service routes the request to it), and a route without
// caching (the BFF's pages and JSON are per user). The front end allows only this profile:
// the AzureFrontDoor.Backend service tag with an X-Azure-FDID header filter (frontend.bicep).

@description('Tags for every resource')
param tags object

@description('The profile (front-door-profile.bicep)')
param profileName string

@description('Endpoint name (its host name is <name>-<hash>.z01.azurefd.net)')
param endpointName string

@description('The front end\'s default host name')
param originHostName string

resource profile 'Microsoft.Cdn/profiles@2025-12-01' existing = {
  name: profileName
}

resource endpoint 'Microsoft.Cdn/profiles/afdEndpoints@2025-12-01' = {
  parent: profile
  name: endpointName
  location: 'global'
  tags: tags
  properties: {
    enabledState: 'Enabled'
  }
}

resource originGroup 'Microsoft.Cdn/profiles/originGroups@2025-12-01' = {
  parent: profile
  name: 'frontend'
  properties: {
    loadBalancingSettings: {
      sampleSize: 4
      successfulSamplesRequired: 3
      additionalLatencyInMilliseconds: 50
    }
    // GET, not HEAD: /healthz answers GET only. Front Door adds X-FD-HealthProbe: 1 and its
    // X-Azure-FDID, so the front end's access restriction lets the probes in.
    healthProbeSettings: {
      probePath: '/healthz'
      probeRequestType: 'GET'
      probeProtocol: 'Https'
      probeIntervalInSeconds: 30
    }
    sessionAffinityState: 'Disabled'
  }
}

resource origin 'Microsoft.Cdn/profiles/originGroups/origins@2025-12-01' = {
  parent: originGroup
  name: 'frontend'
  properties: {
    hostName: originHostName
    originHostHeader: originHostName
    httpPort: 80
    httpsPort: 443
    priority: 1
    weight: 1000
    enabledState: 'Enabled'
    enforceCertificateNameCheck: true
  }
}

resource route 'Microsoft.Cdn/profiles/afdEndpoints/routes@2025-12-01' = {
  parent: endpoint
  name: 'frontend'
  properties: {
    originGroup: {
      id: originGroup.id
    }
    supportedProtocols: [
      'Https'
    ]
    patternsToMatch: [
      '/*'
    ]
    forwardingProtocol: 'HttpsOnly'
    linkToDefaultDomain: 'Enabled'
    httpsRedirect: 'Disabled'
    enabledState: 'Enabled'
    // No cacheConfiguration: caching is off for every path of the BFF.
  }
  dependsOn: [
    origin
  ]
}

output endpointHostName string = endpoint.properties.hostName
