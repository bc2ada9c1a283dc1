// The Linux App Service plan both apps run on. Regional VNet integration and private
// endpoints need Basic or higher; the default P0v3 also gives the faster Premium v3 hardware.

@description('Azure region')
param location string

@description('Tags for every resource')
param tags object

@description('Plan name')
param planName string

@description('Plan SKU (B1 and up support VNet integration and private endpoints)')
param sku string

@description('Number of instances; 2 or more exercises the smoke test\'s per-instance fan-out (needs Standard, Premium or Isolated: the back end stays on one instance by per-app scaling)')
@minValue(1)
param capacity int

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'linux'
  sku: {
    name: sku
    capacity: capacity
  }
  properties: {
    // checkov:skip=CKV_AZURE_225: zone redundancy needs three instances on Premium v3, out of scope for a reference deployment.
    reserved: true
    // Per-app scaling, so the back end can stay on one instance (its numberOfWorkers) while the
    // front end takes every instance: the back end's store is a file on the shared /home that
    // one process at a time can open. Asked for only above one instance, where it is needed:
    // Basic plans do not offer it (planCapacity > 1 needs Standard, Premium or Isolated).
    perSiteScaling: capacity > 1
  }
}

output planId string = plan.id
