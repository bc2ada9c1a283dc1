// Azure Front Door (Standard): the profile alone, deployed before the front end so that the
// front end's access restriction can name the profile's frontDoorId (its X-Azure-FDID header
// filter). The endpoint, origin and route follow in front-door.bicep, once the front end's host
// name is known.

@description('Tags for every resource')
param tags object

@description('Profile name')
param name string

resource profile 'Microsoft.Cdn/profiles@2025-12-01' = {
  name: name
  // Front Door is a global service: its profile lives in the 'global' location.
  location: 'global'
  tags: tags
  sku: {
    name: 'Standard_AzureFrontDoor'
  }
  properties: {
    originResponseTimeoutSeconds: 60
  }
}

output name string = profile.name
@description('The X-Azure-FDID this profile sends: the front end trusts and allows only it')
output frontDoorId string = profile.properties.frontDoorId
