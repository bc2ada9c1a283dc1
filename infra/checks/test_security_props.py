"""Security properties of the Bicep that must never be dropped, and proof that each check fails
when its property goes.

The Bicep is read with tree-sitter-bicep into plain Python values (objects, arrays, literals;
anything computed becomes an `Expr`), so the checks look at what is written, not at text
patterns. Each `check_*` function raises AssertionError naming the file and the property.
The `test_mutation_*` tests copy a module, break one property, and assert that the check
catches it: a check that cannot fail is a defect.

Run: python3 infra/checks/test_security_props.py   (or python3 -m pytest on this file)
"""

from __future__ import annotations

import re
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bicep_source import readable  # noqa: E402

INFRA = Path(__file__).resolve().parent.parent
MODULES = INFRA / "modules"
PARSER = Parser(Language(tree_sitter_bicep.language()))
BACKEND_MODULES = {
    "none": "backend-open.bicep",
    "serviceEndpoint": "backend-service-endpoint.bicep",
    "privateEndpoint": "backend-private-endpoint.bicep",
}
KEY_VAULT_REF = "@Microsoft.KeyVault(SecretUri="


@dataclass(frozen=True)
class Expr:
    """A value computed at deploy time (a reference, an interpolation, a call)."""

    text: str


@dataclass
class Declaration:
    kind: str  # resource | module
    symbol: str
    target: str  # the resource type@version or the module path
    condition: str | None  # the text of `if (...)`, when there is one
    body: dict


# ---------------------------------------------------------------------------------------------
# Reading Bicep


def parse(text: str, origin: str) -> Node:
    tree = PARSER.parse(readable(text).encode())
    assert not tree.root_node.has_error, f"{origin}: does not parse as Bicep"
    return tree.root_node


def value_of(node: Node):
    kind = node.type
    if kind == "object":
        result = {}
        for child in node.named_children:
            if child.type != "object_property":
                continue
            key_node = child.named_children[0]
            key = literal_string(key_node) if key_node.type == "string" else key_node.text.decode()
            result[key] = value_of(child.named_children[-1])
        return result
    if kind == "array":
        return [value_of(c) for c in node.named_children if c.type not in ("comment",)]
    if kind == "string":
        text = literal_string(node)
        return text if text is not None else Expr(node.text.decode())
    if kind == "boolean":
        return node.text.decode() == "true"
    if kind in ("number", "integer"):
        return int(node.text.decode())
    if kind == "null":
        return None
    if kind == "parenthesized_expression" and len(node.named_children) == 1:
        inner = value_of(node.named_children[0])
        return inner if not isinstance(inner, Expr) else Expr(node.text.decode())
    return Expr(node.text.decode())


def literal_string(node: Node) -> str | None:
    """The string's value, or None when it interpolates."""
    if any(c.type == "interpolation" for c in node.named_children):
        return None
    return "".join(c.text.decode() for c in node.named_children if c.type == "string_content")


def declarations(text: str, origin: str) -> list[Declaration]:
    root = parse(text, origin)
    found = []
    for node in root.named_children:
        if node.type not in ("resource_declaration", "module_declaration"):
            continue
        kind = "resource" if node.type == "resource_declaration" else "module"
        symbol = node.named_children[0].text.decode()
        target = literal_string(node.named_children[1]) or ""
        rest = node.named_children[-1]
        condition = None
        if rest.type == "if_statement":
            condition = rest.named_children[0].text.decode()
            rest = rest.named_children[-1]
        if rest.type == "for_statement":
            rest = [c for c in rest.named_children if c.type == "object"][-1]
        body = value_of(rest) if rest.type == "object" else {}
        found.append(Declaration(kind, symbol, target, condition, body))
    return found


def variables(text: str, origin: str) -> dict:
    """`var NAME = VALUE` declarations, VALUE read like any other value."""
    found = {}
    for node in parse(text, origin).named_children:
        if node.type == "variable_declaration":
            found[node.named_children[0].text.decode()] = value_of(node.named_children[-1])
    return found


def conditional_variable(text: str, origin: str, name: str):
    """`var NAME = COND ? A : B` as (COND text, A, B), or None when NAME is not written so."""
    for node in parse(text, origin).named_children:
        if node.type == "variable_declaration" and node.named_children[0].text.decode() == name:
            value = node.named_children[-1]
            if value.type != "ternary_expression":
                return None
            cond, then, other = [c for c in value.named_children if c.type != "comment"]
            return cond.text.decode(), value_of(then), value_of(other)
    return None


def resolve(value, names: dict):
    """A literal, or the literal a plain variable reference stands for."""
    if isinstance(value, Expr) and value.text in names and not isinstance(names[value.text], Expr):
        return names[value.text]
    return value


def resources(text: str, origin: str, type_name: str) -> list[Declaration]:
    return [
        d
        for d in declarations(text, origin)
        if d.kind == "resource" and d.target.split("@")[0].lower() == type_name.lower()
    ]


def one(items: list, what: str):
    assert len(items) == 1, f"expected exactly one {what}, found {len(items)}"
    return items[0]


def dig(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def read(name: str) -> str:
    path = INFRA / name if name == "main.bicep" else MODULES / name
    return path.read_text()


# ---------------------------------------------------------------------------------------------
# Checks


def check_site_baseline(text: str, origin: str, role: str) -> Declaration:
    """What every app must have: HTTPS only, TLS 1.2+, no FTP, no basic publishing
    credentials, HTTP/2, the health check, its role's startup command, managed-identity pull."""
    site = one(resources(text, origin, "Microsoft.Web/sites"), f"Microsoft.Web/sites in {origin}")
    props = site.body.get("properties", {})
    config = props.get("siteConfig", {})
    assert props.get("httpsOnly") is True, f"{origin}: httpsOnly must be true"
    for key in ("minTlsVersion", "scmMinTlsVersion"):
        assert config.get(key) in ("1.2", "1.3"), f"{origin}: siteConfig.{key} must be '1.2' or higher, is {config.get(key)!r}"
    assert config.get("ftpsState") == "Disabled", f"{origin}: siteConfig.ftpsState must be 'Disabled', is {config.get('ftpsState')!r}"
    assert config.get("http20Enabled") is True, f"{origin}: siteConfig.http20Enabled must be true"
    assert config.get("healthCheckPath") == "/healthz", f"{origin}: siteConfig.healthCheckPath must be '/healthz', is {config.get('healthCheckPath')!r}"
    assert config.get("appCommandLine") == role, f"{origin}: siteConfig.appCommandLine must be {role!r}, is {config.get('appCommandLine')!r}"
    assert config.get("acrUseManagedIdentityCreds") is True, f"{origin}: siteConfig.acrUseManagedIdentityCreds must be true"
    assert config.get("acrUserManagedIdentityID"), f"{origin}: siteConfig.acrUserManagedIdentityID must name the pulling identity"
    assert config.get("remoteDebuggingEnabled") is False, f"{origin}: remote debugging must be off"
    assert dig(site.body, "identity", "type"), f"{origin}: the site needs a managed identity"
    assert props.get("keyVaultReferenceIdentity"), f"{origin}: keyVaultReferenceIdentity must name the identity that reads Key Vault"
    fx = config.get("linuxFxVersion")
    assert isinstance(fx, Expr) and fx.text.startswith("'DOCKER|"), f"{origin}: linuxFxVersion must be DOCKER|<image>"
    if role == "backend":
        workers = config.get("numberOfWorkers")
        assert isinstance(workers, Expr) and workers.text == "instanceCount", \
            f"{origin}: siteConfig.numberOfWorkers must be instanceCount (1 on the embedded store, which admits one process; the plan's capacity on PostgreSQL)"

    # A custom container's stdout (the apps' JSON logs) lands in AppServiceConsoleLogs only.
    diagnostics = one(resources(text, origin, "Microsoft.Insights/diagnosticSettings"), f"diagnostic settings in {origin}")
    categories = [log.get("category") for log in dig(diagnostics.body, "properties", "logs", default=[]) if log.get("enabled") is True]
    assert "AppServiceConsoleLogs" in categories, f"{origin}: the diagnostic settings must send AppServiceConsoleLogs (where the apps' JSON logs land)"

    policies = {
        d.body.get("name"): d
        for d in resources(text, origin, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    }
    for name in ("ftp", "scm"):
        assert name in policies, f"{origin}: basicPublishingCredentialsPolicies '{name}' is missing"
        assert dig(policies[name].body, "properties", "allow") is False, f"{origin}: basic publishing credentials '{name}' must have allow: false"
        parent = policies[name].body.get("parent")
        assert isinstance(parent, Expr) and parent.text == site.symbol, f"{origin}: policy '{name}' must belong to the site"
    return site


def check_frontend(text: str, origin: str = "frontend.bicep") -> None:
    site = check_site_baseline(text, origin, "frontend")
    props = site.body["properties"]
    config = props["siteConfig"]
    assert isinstance(props.get("virtualNetworkSubnetId"), Expr), f"{origin}: the front end must be VNet-integrated (virtualNetworkSubnetId)"
    # Route-all is outboundVnetRouting.applicationTraffic, honoured from API 2024-11-01 on; the
    # older siteConfig.vnetRouteAllEnabled is not honoured there and would only mislead.
    version = site.target.split("@")[1]
    assert version >= "2024-11-01", f"{origin}: Microsoft.Web/sites@{version} predates outboundVnetRouting (2024-11-01)"
    routing = props.get("outboundVnetRouting", {})
    assert routing.get("applicationTraffic") is True or routing.get("allTraffic") is True, \
        f"{origin}: outboundVnetRouting.applicationTraffic must be true (route all outbound traffic into the VNet)"
    assert "vnetRouteAllEnabled" not in config and "vnetRouteAllEnabled" not in props, \
        f"{origin}: vnetRouteAllEnabled is not honoured by this API version: route-all is outboundVnetRouting.applicationTraffic"
    workers = config.get("numberOfWorkers")
    assert isinstance(workers, Expr) and workers.text == "instanceCount", \
        f"{origin}: siteConfig.numberOfWorkers must be instanceCount (the plan's capacity): with per-app scaling the front end gets one instance otherwise"
    assert props.get("clientAffinityEnabled") is True, f"{origin}: ARRAffinity must stay on: the smoke test pins each instance with it"
    # The SCM site: its own rules, closed by default (the main ones would be Front Door's).
    assert config.get("scmIpSecurityRestrictionsUseMain") is False, \
        f"{origin}: the SCM site must have its own rules (scmIpSecurityRestrictionsUseMain false): the main ones admit only Front Door"
    assert config.get("scmIpSecurityRestrictionsDefaultAction") == "Deny", \
        f"{origin}: scmIpSecurityRestrictionsDefaultAction must be 'Deny': an open SCM site answers the internet"
    # Behind Front Door: the service tag AND our profile's X-Azure-FDID, else any Front Door gets in.
    rules = variables(text, origin).get("frontDoorRules")
    assert isinstance(rules, list) and rules, f"{origin}: frontDoorRules must list the Front Door rule"
    for rule in rules:
        assert rule.get("tag") == "ServiceTag" and rule.get("ipAddress") == "AzureFrontDoor.Backend", \
            f"{origin}: the Front Door rule must allow the AzureFrontDoor.Backend service tag"
        fdid = dig(rule, "headers", "x-azure-fdid")
        assert isinstance(fdid, list) and fdid and all(isinstance(v, Expr) and v.text == "frontDoorId" for v in fdid), \
            f"{origin}: the Front Door rule needs the X-Azure-FDID header filter with the profile's frontDoorId (the tag alone admits every customer's Front Door)"
    # Behind Application Gateway: the gateway's subnet only (by its service endpoint), no address.
    gateway_rules = variables(text, origin).get("appGatewayRules")
    assert isinstance(gateway_rules, list) and gateway_rules, f"{origin}: appGatewayRules must list the gateway subnet's rule"
    for rule in gateway_rules:
        assert rule.get("action") == "Allow" and rule.get("vnetSubnetResourceId") == Expr("appGatewaySubnetId") \
            and "ipAddress" not in rule and "tag" not in rule, \
            f"{origin}: the Application Gateway rule must allow only the gateway subnet (vnetSubnetResourceId: appGatewaySubnetId)"
    front_rules = variables(text, origin).get("frontRules")
    expected_rules = "!empty(frontDoorId) ? frontDoorRules : (!empty(appGatewaySubnetId) ? appGatewayRules : [])"
    assert front_rules == Expr(expected_rules), \
        f"{origin}: var frontRules must be {expected_rules} (Front Door's rules, else the gateway's), is {front_rules}"
    restrictions = config.get("ipSecurityRestrictions")
    assert restrictions == Expr("frontRules"), \
        f"{origin}: ipSecurityRestrictions must apply frontRules (frontDoorRules behind Front Door, appGatewayRules behind the gateway)"
    default = config.get("ipSecurityRestrictionsDefaultAction")
    assert default == Expr("empty(frontRules) ? 'Allow' : 'Deny'"), \
        f"{origin}: ipSecurityRestrictionsDefaultAction must be 'Deny' whenever a front's rules apply (empty(frontRules) ? 'Allow' : 'Deny')"


def check_backend_slot(text: str, origin: str = "backend-slot.bicep") -> None:
    """A slot is a site of its own: it must carry the same lockdown, written out again."""
    slots = resources(text, origin, "Microsoft.Web/sites/slots")
    assert slots, f"{origin}: no slot declared"
    for slot in resources(text, origin, "Microsoft.Web/sites/slots"):
        sconfig = dig(slot.body, "properties", "siteConfig", default={})
        assert sconfig.get("ipSecurityRestrictionsDefaultAction") == "Deny", \
            f"{origin}: slot {slot.symbol}: ipSecurityRestrictionsDefaultAction must be 'Deny' (a slot does not inherit production's rules)"
        srules = sconfig.get("ipSecurityRestrictions")
        assert isinstance(srules, list) and srules and all(
            isinstance(r.get("vnetSubnetResourceId"), Expr) and "ipAddress" not in r for r in srules if r.get("action") == "Allow"
        ), f"{origin}: slot {slot.symbol} must allow only the integration subnet"
        assert sconfig.get("scmIpSecurityRestrictionsUseMain") is True, f"{origin}: slot {slot.symbol}: its SCM site must follow its main rules"
        assert dig(slot.body, "properties", "httpsOnly") is True, f"{origin}: slot {slot.symbol}: httpsOnly"
        assert sconfig.get("ftpsState") == "Disabled", f"{origin}: slot {slot.symbol}: ftpsState"
        assert isinstance(dig(slot.body, "properties", "virtualNetworkSubnetId"), Expr), \
            f"{origin}: slot {slot.symbol}: VNet integration is per slot (virtualNetworkSubnetId)"
    policies = resources(text, origin, "Microsoft.Web/sites/slots/basicPublishingCredentialsPolicies")
    assert {p.body.get("name") for p in policies if dig(p.body, "properties", "allow") is False} == {"ftp", "scm"}, \
        f"{origin}: basic publishing credentials (ftp and scm) must be off on the slot"


def check_front_door(text: str, origin: str = "front-door.bicep") -> None:
    """Front Door in front of the front end: probes on /healthz, the app's own host header, TLS
    to the origin with its name checked, and no caching of the BFF's routes."""
    group = one(resources(text, origin, "Microsoft.Cdn/profiles/originGroups"), "origin group")
    probe = dig(group.body, "properties", "healthProbeSettings", default={})
    assert probe.get("probePath") == "/healthz", f"{origin}: the health probe must ask /healthz"
    origin_res = one(resources(text, origin, "Microsoft.Cdn/profiles/originGroups/origins"), "origin")
    props = origin_res.body["properties"]
    assert props.get("originHostHeader") == props.get("hostName"), \
        f"{origin}: originHostHeader must be the front end's own host name (App Service routes by it)"
    assert props.get("enforceCertificateNameCheck") is True, f"{origin}: enforceCertificateNameCheck must stay on"
    route = one(resources(text, origin, "Microsoft.Cdn/profiles/afdEndpoints/routes"), "route")
    rprops = route.body["properties"]
    assert "cacheConfiguration" not in rprops, f"{origin}: the BFF's routes must not be cached (no cacheConfiguration)"
    assert rprops.get("forwardingProtocol") == "HttpsOnly", f"{origin}: forwardingProtocol must be HttpsOnly"
    assert rprops.get("supportedProtocols") == ["Https"], f"{origin}: the route must take HTTPS only"


APP_GATEWAY_TLS_POLICIES = {"AppGwSslPolicy20220101", "AppGwSslPolicy20220101S"}


def check_app_gateway(text: str, origin: str = "app-gateway.bicep") -> None:
    """Application Gateway in front of the front end: HTTPS to the front end under its own name,
    a /healthz probe with that name, TLS 1.2 and later for HTTPS listeners, a Standard static IP."""
    gateway = one(resources(text, origin, "Microsoft.Network/applicationGateways"), "Application Gateway")
    props = gateway.body["properties"]
    assert dig(props, "sku", "tier") in ("Standard_v2", "WAF_v2"), f"{origin}: the gateway must be a v2 SKU"
    policy = props.get("sslPolicy", {})
    if policy.get("policyType") == "Predefined":
        assert policy.get("policyName") in APP_GATEWAY_TLS_POLICIES, \
            f"{origin}: sslPolicy must require TLS 1.2 or later (a predefined policy of {sorted(APP_GATEWAY_TLS_POLICIES)})"
    else:
        assert policy.get("minProtocolVersion") in ("TLSv1_2", "TLSv1_3"), \
            f"{origin}: sslPolicy must require TLS 1.2 or later (minProtocolVersion TLSv1_2)"
        suites = policy.get("cipherSuites")
        assert isinstance(suites, list) and suites and all(
            isinstance(s, str) and s.startswith("TLS_ECDHE_") and "_GCM_" in s for s in suites
        ), f"{origin}: sslPolicy.cipherSuites must be forward-secret AES-GCM suites only (TLS_ECDHE_..._GCM_...)"
    pool = one(props.get("backendAddressPools", []), "backend pool")
    addresses = dig(pool, "properties", "backendAddresses", default=[])
    assert addresses == [{"fqdn": Expr("backendHostName")}], f"{origin}: the backend pool must be the front end's default host name alone"
    settings = one(props.get("backendHttpSettingsCollection", []), "backend HTTP settings")
    sprops = settings["properties"]
    assert sprops.get("protocol") == "Https" and sprops.get("port") == 443, \
        f"{origin}: the backend settings must use HTTPS on 443 (the front end is httpsOnly)"
    assert sprops.get("pickHostNameFromBackendAddress") is True, \
        f"{origin}: pickHostNameFromBackendAddress must be true (App Service routes by the Host header)"
    assert isinstance(dig(sprops, "probe", "id"), Expr), f"{origin}: the backend settings must use the health probe"
    probe = one(props.get("probes", []), "health probe")
    pprops = probe["properties"]
    assert pprops.get("path") == "/healthz", f"{origin}: the health probe must ask /healthz"
    assert pprops.get("protocol") == "Https", f"{origin}: the health probe must use HTTPS"
    assert pprops.get("pickHostNameFromBackendHttpSettings") is True, \
        f"{origin}: the probe must take its host name from the backend settings (pickHostNameFromBackendHttpSettings)"
    for listener in props.get("httpListeners", []):
        if dig(listener, "properties", "protocol") == "Https":
            assert isinstance(dig(listener, "properties", "sslCertificate", "id"), Expr), \
                f"{origin}: HTTPS listener {listener.get('name')!r} needs a certificate (from Key Vault)"
    ip = one(resources(text, origin, "Microsoft.Network/publicIPAddresses"), "public IP")
    assert dig(ip.body, "sku", "name") == "Standard" and dig(ip.body, "properties", "publicIPAllocationMethod") == "Static", \
        f"{origin}: Application Gateway v2 needs a Standard, static public IP"


def check_backend_service_endpoint(text: str, origin: str = "backend-service-endpoint.bicep") -> None:
    site = check_site_baseline(text, origin, "backend")
    props = site.body["properties"]
    config = props["siteConfig"]
    assert config.get("ipSecurityRestrictionsDefaultAction") == "Deny", \
        f"{origin}: ipSecurityRestrictionsDefaultAction must be 'Deny', is {config.get('ipSecurityRestrictionsDefaultAction')!r}"
    rules = config.get("ipSecurityRestrictions")
    assert isinstance(rules, list) and rules, f"{origin}: the back end needs its access rules"
    allows = [r for r in rules if r.get("action") == "Allow"]
    assert allows, f"{origin}: one rule must allow the integration subnet"
    for rule in allows:
        assert isinstance(rule.get("vnetSubnetResourceId"), Expr), f"{origin}: allow rule {rule.get('name')!r} must name the integration subnet (vnetSubnetResourceId)"
        assert "ipAddress" not in rule, f"{origin}: allow rule {rule.get('name')!r} must not open an IP range"
    assert config.get("scmIpSecurityRestrictionsUseMain") is True, f"{origin}: the SCM site must follow the main rules (scmIpSecurityRestrictionsUseMain)"
    assert props.get("publicNetworkAccess") == "Enabled", f"{origin}: a service endpoint needs public network access Enabled"
    slot = [d for d in declarations(text, origin) if d.kind == "module" and d.target == "backend-slot.bicep"]
    for module in slot:
        given = dig(module.body, "params", "integrationSubnetId")
        assert isinstance(given, Expr) and given.text == "integrationSubnetId", \
            f"{origin}: the staging slot must allow the same integration subnet"
        egress = dig(module.body, "params", "egressSubnetId")
        assert isinstance(egress, Expr) and egress.text == "egressSubnetId", \
            f"{origin}: the staging slot must be VNet-integrated as production is (egressSubnetId)"
    assert not resources(text, origin, "Microsoft.Network/privateEndpoints"), f"{origin}: no private endpoint next to service-endpoint rules"


def check_backend_private_endpoint(text: str, origin: str = "backend-private-endpoint.bicep") -> None:
    site = check_site_baseline(text, origin, "backend")
    props = site.body["properties"]
    config = props["siteConfig"]
    assert props.get("publicNetworkAccess") == "Disabled", \
        f"{origin}: publicNetworkAccess must be 'Disabled', is {props.get('publicNetworkAccess')!r}"
    for rule in config.get("ipSecurityRestrictions") or []:
        assert "vnetSubnetResourceId" not in rule, f"{origin}: service-endpoint rules are not supported next to a private endpoint"
    assert config.get("ipSecurityRestrictionsDefaultAction") == "Deny", f"{origin}: keep the default action Deny in case public access is turned back on"

    endpoint = one(resources(text, origin, "Microsoft.Network/privateEndpoints"), f"private endpoint in {origin}")
    connection = one(dig(endpoint.body, "properties", "privateLinkServiceConnections", default=[]), "private link connection")
    assert dig(connection, "properties", "groupIds") == ["sites"], f"{origin}: the private endpoint's group must be 'sites'"
    target = dig(connection, "properties", "privateLinkServiceId")
    assert isinstance(target, Expr) and target.text == f"{site.symbol}.id", f"{origin}: the private endpoint must point at the back end"

    zone = one(resources(text, origin, "Microsoft.Network/privateDnsZones"), f"private DNS zone in {origin}")
    assert zone.body.get("name") == "privatelink.azurewebsites.net", f"{origin}: the zone must be privatelink.azurewebsites.net"
    link = one(resources(text, origin, "Microsoft.Network/privateDnsZones/virtualNetworkLinks"), "zone link")
    assert isinstance(dig(link.body, "properties", "virtualNetwork", "id"), Expr), f"{origin}: the zone must be linked to the VNet"
    group = one(resources(text, origin, "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"), "zone group")
    configs = dig(group.body, "properties", "privateDnsZoneConfigs", default=[])
    assert any(isinstance(dig(c, "properties", "privateDnsZoneId"), Expr) for c in configs), f"{origin}: the zone group must register the endpoint in the zone"


def check_backend_open(text: str, origin: str = "backend-open.bicep") -> None:
    site = check_site_baseline(text, origin, "backend")
    config = site.body["properties"]["siteConfig"]
    # Open must really be open, so that going back from a locked-down mode works.
    assert config.get("ipSecurityRestrictions") == [], f"{origin}: mode none clears the access rules"


def check_network(text: str, origin: str = "network.bicep") -> None:
    vnet = one(resources(text, origin, "Microsoft.Network/virtualNetworks"), "virtual network")
    names = variables(text, origin)
    assert dig(vnet.body, "properties", "subnets") == Expr("concat(baseSubnets, appGatewaySubnets)"), \
        f"{origin}: the VNet's subnets must be concat(baseSubnets, appGatewaySubnets)"
    base = names.get("baseSubnets")
    assert isinstance(base, list), f"{origin}: var baseSubnets must be a literal array"
    subnets = {resolve(s["name"], names): s for s in base}
    # The gateway subnet: only with the gateway, with the Microsoft.Web service endpoint (the
    # front end's rule names the subnet, which App Service sees only through that endpoint).
    gateway = conditional_variable(text, origin, "appGatewaySubnets")
    assert gateway is not None and gateway[0] == "enableAppGatewaySubnet" and gateway[2] == [], \
        f"{origin}: var appGatewaySubnets must be enableAppGatewaySubnet ? [ ... ] : []"
    gateway_subnet = one(gateway[1], "Application Gateway subnet")
    assert resolve(gateway_subnet.get("name"), names) == "snet-appgw", f"{origin}: the gateway subnet must be snet-appgw"
    endpoints = [dig(e, "service") for e in dig(gateway_subnet, "properties", "serviceEndpoints", default=[])]
    assert endpoints == ["Microsoft.Web"], f"{origin}: the gateway subnet needs the Microsoft.Web service endpoint"
    assert not dig(gateway_subnet, "properties", "delegations"), f"{origin}: an Application Gateway subnet takes no delegation"
    assert isinstance(dig(gateway_subnet, "properties", "networkSecurityGroup", "id"), Expr), \
        f"{origin}: the gateway subnet needs its NSG"
    integration = subnets.get("snet-integration") or {}
    services = [dig(d, "properties", "serviceName") for d in dig(integration, "properties", "delegations", default=[])]
    assert services == ["Microsoft.Web/serverFarms"], f"{origin}: the integration subnet must be delegated to Microsoft.Web/serverFarms"
    assert "snet-private-endpoints" in subnets, f"{origin}: the private-endpoint subnet is missing"


def check_plan(text: str, origin: str = "plan.bicep") -> None:
    plan = one(resources(text, origin, "Microsoft.Web/serverfarms"), "App Service plan")
    scaling = dig(plan.body, "properties", "perSiteScaling")
    assert isinstance(scaling, Expr) and scaling.text == "capacity > 1", \
        f"{origin}: perSiteScaling must be on above one instance (capacity > 1), so the back end keeps its one instance"


def check_main(text: str, origin: str = "main.bicep") -> None:
    decls = declarations(text, origin)
    modules = {d.target: d for d in decls if d.kind == "module"}
    for mode, module in BACKEND_MODULES.items():
        decl = modules.get(f"modules/{module}")
        assert decl is not None, f"{origin}: module {module} is not used"
        assert decl.condition == f"(lockdownMode == '{mode}')", \
            f"{origin}: modules/{module} must be deployed exactly when lockdownMode == '{mode}', condition is {decl.condition!r}"
    network = modules.get("modules/network.bicep")
    assert network is not None and isinstance(dig(network.body, "params", "enableWebServiceEndpoint"), Expr), f"{origin}: network module missing"
    assert dig(network.body, "params", "enableWebServiceEndpoint").text == "(lockdownMode == 'serviceEndpoint')", \
        f"{origin}: the Microsoft.Web service endpoint belongs to serviceEndpoint mode only"

    names = variables(text, origin)
    settings = {}
    for name in ("frontendBaseSettings", "frontendApiKeySettings", "frontendEntraSettings",
                 "backendBaseSettings", "backendApiKeySettings", "backendEntraSettings"):
        block = names.get(name)
        assert isinstance(block, list), f"{origin}: var {name} must be a literal array of settings"
        settings[name] = {s["name"]: s["value"] for s in block}
    for side in ("frontend", "backend"):
        combined = names.get(f"{side}Settings")
        expected = f"concat({side}BaseSettings, usesEntra ? {side}EntraSettings : {side}ApiKeySettings"
        expected += (", usesDatabase ? backendDatabaseSettings : [])" if side == "backend"
                     else ", usesFrontDoor ? frontendFrontDoorSettings : [])")
        assert isinstance(combined, Expr) and combined.text == expected, \
            f"{origin}: var {side}Settings must be {expected}, is {combined}"

    # Front Door: the front end trusts (and its rule allows) exactly the profile main.bicep made.
    front_door = names.get("frontendFrontDoorSettings")
    assert isinstance(front_door, list) and {s["name"]: s["value"] for s in front_door}.get("FRONT_DOOR_ID") == Expr("frontDoorId"), \
        f"{origin}: FRONT_DOOR_ID must be the profile's frontDoorId"
    frontend = modules.get("modules/frontend.bicep")
    assert frontend is not None and dig(frontend.body, "params", "frontDoorId") == Expr("frontDoorId"), \
        f"{origin}: the front end's access restriction must name the profile's frontDoorId"
    profile = modules.get("modules/front-door-profile.bicep")
    assert profile is not None and profile.condition == "(usesFrontDoor)", \
        f"{origin}: the Front Door profile must be deployed exactly when front == 'frontDoor'"
    # Application Gateway: its own subnet (only then), the front end allows exactly that subnet.
    assert names.get("usesAppGateway") == Expr("front == 'appGateway'"), f"{origin}: usesAppGateway must be front == 'appGateway'"
    assert dig(network.body, "params", "enableAppGatewaySubnet") == Expr("usesAppGateway"), \
        f"{origin}: the gateway subnet belongs to front == 'appGateway' only (enableAppGatewaySubnet: usesAppGateway)"
    assert dig(frontend.body, "params", "appGatewaySubnetId") == Expr("network.outputs.appGatewaySubnetId"), \
        f"{origin}: the front end's access restriction must name the gateway subnet (network.outputs.appGatewaySubnetId)"
    gateway = modules.get("modules/app-gateway.bicep")
    assert gateway is not None and gateway.condition == "(usesAppGateway)", \
        f"{origin}: the Application Gateway must be deployed exactly when front == 'appGateway'"
    assert dig(gateway.body, "params", "subnetId") == Expr("network.outputs.appGatewaySubnetId"), \
        f"{origin}: the gateway must sit in the subnet the front end allows"
    assert dig(gateway.body, "params", "backendHostName") == Expr("frontend.outputs.defaultHostName"), \
        f"{origin}: the gateway's backend must be the front end's default host name"

    # PostgreSQL: no password (the identity's token), and the back end scales with the plan only
    # then (the embedded store admits one process).
    database = names.get("backendDatabaseSettings")
    assert isinstance(database, list), f"{origin}: var backendDatabaseSettings must be a literal array"
    database = {s["name"]: s["value"] for s in database}
    assert database.get("DB_AUTH") == "entra", f"{origin}: the back end's database login must be DB_AUTH=entra"
    url = database.get("DATABASE_URL")
    assert isinstance(url, Expr) and url.text.startswith("'postgres://${backendIdentityName}@${databaseHostName}:5432/"), \
        f"{origin}: DATABASE_URL must be the identity's role at the server's public name, without a password, is {url}"
    assert "sslmode" not in url.text, f"{origin}: DATABASE_URL must keep the default verify-full"
    count = names.get("backendInstanceCount")
    assert isinstance(count, Expr) and count.text == "(usesDatabase) ? planCapacity : 1", \
        f"{origin}: backendInstanceCount must be (usesDatabase) ? planCapacity : 1, is {count}"
    for module in BACKEND_MODULES.values():
        given = dig(modules[f"modules/{module}"].body, "params", "instanceCount")
        assert isinstance(given, Expr) and given.text == "backendInstanceCount", \
            f"{origin}: modules/{module} instanceCount must be backendInstanceCount, is {given}"
        # On PostgreSQL the back end reaches the database's private endpoint: VNet-integrated.
        egress = dig(modules[f"modules/{module}"].body, "params", "egressSubnetId")
        assert isinstance(egress, Expr) and egress.text == "backendEgressSubnetId", \
            f"{origin}: modules/{module} egressSubnetId must be backendEgressSubnetId, is {egress}"
    egress = names.get("backendEgressSubnetId")
    assert isinstance(egress, Expr) and egress.text == "usesDatabase ? network.outputs.integrationSubnetId : ''", \
        f"{origin}: the back end must be VNet-integrated exactly when it uses PostgreSQL (backendEgressSubnetId), is {egress}"
    postgres = modules.get("modules/database.bicep")
    assert postgres is not None and postgres.condition == "(createsDatabase)", \
        f"{origin}: modules/database.bicep must be deployed exactly when a server is made here (createsDatabase)"
    admin = dig(postgres.body, "params", "administratorPrincipalId")
    assert isinstance(admin, Expr) and admin.text == "identities.outputs.backendPrincipalId", \
        f"{origin}: the database's Entra administrator must be the back end's identity, is {admin}"
    admin_name = dig(postgres.body, "params", "administratorName")
    assert isinstance(admin_name, Expr) and admin_name.text == "backendIdentityName", \
        f"{origin}: the administrator's name must be DATABASE_URL's user (backendIdentityName), is {admin_name}"
    assert isinstance(names.get("usesEntra"), Expr) and names["usesEntra"].text == "(backendAuth == 'entra')", \
        f"{origin}: usesEntra must be (backendAuth == 'entra')"

    front, back = settings["frontendBaseSettings"], settings["backendBaseSettings"]
    front_key, back_key = settings["frontendApiKeySettings"], settings["backendApiKeySettings"]
    front_entra, back_entra = settings["frontendEntraSettings"], settings["backendEntraSettings"]
    assert isinstance(front.get("DIAG_TOKEN"), Expr) and front["DIAG_TOKEN"].text.endswith("Ref"), f"{origin}: front end DIAG_TOKEN must be a Key Vault reference"
    assert isinstance(front.get("BACKEND_DIAG_TOKEN"), Expr) and front["BACKEND_DIAG_TOKEN"].text == "diagTokenRef", \
        f"{origin}: front end BACKEND_DIAG_TOKEN must be the back end's DIAG_TOKEN, as a Key Vault reference (diagTokenRef)"
    assert isinstance(back.get("DIAG_TOKEN"), Expr) and back["DIAG_TOKEN"].text.endswith("Ref"), f"{origin}: back end DIAG_TOKEN must be a Key Vault reference"
    assert isinstance(front_key.get("BACKEND_API_KEY"), Expr) and front_key["BACKEND_API_KEY"].text.endswith("Ref"), f"{origin}: front end BACKEND_API_KEY must be a Key Vault reference"
    assert isinstance(back_key.get("API_KEYS"), Expr) and back_key["API_KEYS"].text.endswith("Ref"), f"{origin}: back end API_KEYS must be a Key Vault reference"
    assert front_key.get("BACKEND_AUTH") == "api-key" and back_key.get("AUTH_MODE") == "api-key", \
        f"{origin}: the apiKey settings must set BACKEND_AUTH / AUTH_MODE to api-key"
    for key in ("BACKEND_API_KEY", "API_KEYS", "AUTH_MODE", "BACKEND_AUTH"):
        assert key not in front and key not in back, f"{origin}: {key} belongs to the per-credential settings, not the base"
    # Entra: the front end asks its user-assigned identity for a token for the back end's URI; the
    # back end accepts that identity only (application and object), with the role, in this tenant.
    assert front_entra.get("BACKEND_AUTH") == "entra", f"{origin}: frontend entra settings must set BACKEND_AUTH=entra"
    assert isinstance(front_entra.get("BACKEND_TOKEN_RESOURCE"), Expr) and front_entra["BACKEND_TOKEN_RESOURCE"].text == "backendAppIdUri", \
        f"{origin}: BACKEND_TOKEN_RESOURCE must be the back end's application ID URI"
    assert isinstance(front_entra.get("AZURE_CLIENT_ID"), Expr) and "frontendClientId" in front_entra["AZURE_CLIENT_ID"].text, \
        f"{origin}: AZURE_CLIENT_ID must name the front end's user-assigned identity"
    assert "BACKEND_API_KEY" not in front_entra and "API_KEYS" not in back_entra, f"{origin}: no API key in entra mode"
    assert back_entra.get("AUTH_MODE") == "entra", f"{origin}: backend entra settings must set AUTH_MODE=entra"
    assert isinstance(back_entra.get("ENTRA_TENANT_ID"), Expr) and back_entra["ENTRA_TENANT_ID"].text == "tenant().tenantId", \
        f"{origin}: ENTRA_TENANT_ID must be the deployment's tenant"
    assert isinstance(back_entra.get("ENTRA_ALLOWED_APPS"), Expr) and "frontendClientId" in back_entra["ENTRA_ALLOWED_APPS"].text, \
        f"{origin}: ENTRA_ALLOWED_APPS must be the front end's identity's client ID"
    assert isinstance(back_entra.get("ENTRA_ALLOWED_OBJECTS"), Expr) and "frontendPrincipalId" in back_entra["ENTRA_ALLOWED_OBJECTS"].text, \
        f"{origin}: ENTRA_ALLOWED_OBJECTS must be the front end's identity's principal ID"
    for key in ("ENTRA_AUDIENCES", "ENTRA_REQUIRED_ROLE"):
        assert isinstance(back_entra.get(key), Expr), f"{origin}: back end {key} must come from the app registration"
    entra_app = modules.get("modules/entra-app.bicep")
    assert entra_app is not None and entra_app.condition == "(backendAuth == 'entra')", \
        f"{origin}: modules/entra-app.bicep must be deployed exactly when backendAuth == 'entra'"
    # authsettingsV2 in both modes (a deployment never removes what it leaves out), on in entra only.
    auth = modules.get("modules/backend-auth.bicep")
    assert auth is not None and auth.condition is None, \
        f"{origin}: modules/backend-auth.bicep must be deployed in both modes (switched off for apiKey), condition is {auth and auth.condition!r}"
    switch = dig(auth.body, "params", "enabled")
    assert isinstance(switch, Expr) and switch.text == "usesEntra", \
        f"{origin}: backend-auth enabled must be usesEntra (on in entra mode only), is {switch}"
    for param, source in (("allowedApplications", "frontendClientId"), ("allowedPrincipalIds", "frontendPrincipalId")):
        values = dig(auth.body, "params", param)
        assert isinstance(values, list) and values and all(isinstance(v, Expr) and source in v.text for v in values), \
            f"{origin}: backend-auth {param} must list the front end's identity ({source})"
    assert front.get("WEBSITES_PORT") == "8080" and back.get("WEBSITES_PORT") == "8080", f"{origin}: WEBSITES_PORT must be 8080"
    assert isinstance(front.get("INTEGRATION_SUBNET"), Expr), f"{origin}: front end INTEGRATION_SUBNET must be the integration subnet CIDR"
    assert isinstance(back.get("ALLOWED_CALLERS"), Expr) and "integrationSubnetPrefix" in back["ALLOWED_CALLERS"].text, \
        f"{origin}: back end ALLOWED_CALLERS must be the integration subnet when locked down"
    assert back.get("CLIENT_IP_SOURCE") == "x-client-ip", f"{origin}: CLIENT_IP_SOURCE must be x-client-ip"
    assert back.get("DATA_DIR") == "/home/data" and back.get("WEBSITES_ENABLE_APP_SERVICE_STORAGE") == "true", \
        f"{origin}: the back end's data must live in the persisted /home"
    for ref in ("backendApiKeyRef", "diagTokenRef"):
        assert f"var {ref} = '{KEY_VAULT_REF}" in text, f"{origin}: {ref} must be a @Microsoft.KeyVault(SecretUri=...) reference"


def param_min_length(text: str, name: str) -> bool:
    """The parameter carries @minLength(1) (among its decorators)."""
    return re.search(rf"@minLength\(1\)\n(?:@[^\n]*\n)*param {name} ", text) is not None


def check_backend_auth(text: str, origin: str = "backend-auth.bicep") -> None:
    """App Service Authentication: required, 401 (no redirect), /healthz excluded, no token
    store, HTTPS, the v1 issuer, and allowed lists that can never be empty (App Service reads an
    empty list as "nobody", and the app's own check must stay the real one)."""
    config = one(resources(text, origin, "Microsoft.Web/sites/config"), f"site config in {origin}")
    assert config.body.get("name") == "authsettingsV2", f"{origin}: the config must be authsettingsV2"
    props = config.body.get("properties", {})
    for path in (("platform", "enabled"), ("identityProviders", "azureActiveDirectory", "enabled")):
        switch = dig(props, *path)
        assert isinstance(switch, Expr) and switch.text == "enabled", \
            f"{origin}: {'.'.join(path)} must follow the enabled parameter (on for entra, off for apiKey), is {switch!r}"
    assert re.search(r"^param enabled bool$", text, re.M), f"{origin}: param enabled bool is missing"
    validation = props.get("globalValidation", {})
    assert validation.get("requireAuthentication") is True, f"{origin}: globalValidation.requireAuthentication must be true"
    assert validation.get("unauthenticatedClientAction") == "Return401", \
        f"{origin}: unauthenticatedClientAction must be Return401 (an API, not a login page), is {validation.get('unauthenticatedClientAction')!r}"
    excluded = validation.get("excludedPaths")
    assert isinstance(excluded, list) and "/healthz" in excluded, \
        f"{origin}: excludedPaths must hold '/healthz' (the platform's health check), is {excluded!r}"
    for path in excluded:
        # Only the health check and the token-guarded diagnostics: never /api, never a wildcard.
        assert path == "/healthz" or re.fullmatch(r"/diag/(resolve|tcpping|http|env|tls)", path), \
            f"{origin}: excludedPaths may hold /healthz and the /diag routes only (the app's own token guards them), not {path!r}"
    assert dig(props, "login", "tokenStore", "enabled") is False, f"{origin}: the token store must be off"
    assert dig(props, "httpSettings", "requireHttps") is True, f"{origin}: httpSettings.requireHttps must be true"
    aad = dig(props, "identityProviders", "azureActiveDirectory", default={})
    issuer = dig(aad, "registration", "openIdIssuer")
    assert isinstance(issuer, Expr) and issuer.text.startswith("'https://sts.windows.net/"), \
        f"{origin}: openIdIssuer must be the tenant's v1 issuer https://sts.windows.net/{{tenant}}/"
    validation = aad.get("validation", {})
    policy = validation.get("defaultAuthorizationPolicy", {})
    lists = {
        "allowedAudiences": validation.get("allowedAudiences"),
        "allowedApplications": policy.get("allowedApplications"),
        "allowedPrincipalIds": dig(policy, "allowedPrincipals", "identities"),
    }
    for param, value in lists.items():
        assert isinstance(value, Expr) and value.text == param, f"{origin}: {param} must come from its parameter"
        assert param_min_length(text, param), f"{origin}: param {param} must be @minLength(1): an empty list means nobody"


def check_entra_app(text: str, origin: str = "entra-app.bicep") -> None:
    """The back end's app registration: an application ID URI, one app role for applications,
    role assignment required on its service principal, and the role assigned to the front end."""
    app = one(resources(text, origin, "Microsoft.Graph/applications"), "application")
    uris = app.body.get("identifierUris")
    assert isinstance(uris, list) and len(uris) == 1 and isinstance(uris[0], Expr) and uris[0].text.startswith("'api://"), \
        f"{origin}: the app needs one api:// identifier URI"
    roles = app.body.get("appRoles")
    assert isinstance(roles, list) and len(roles) == 1, f"{origin}: the app needs its one app role"
    assert roles[0].get("allowedMemberTypes") == ["Application"], f"{origin}: the app role is for applications only"
    assert roles[0].get("isEnabled") is True, f"{origin}: the app role must be enabled"
    sp = one(resources(text, origin, "Microsoft.Graph/servicePrincipals"), "service principal")
    assert sp.body.get("appRoleAssignmentRequired") is True, f"{origin}: appRoleAssignmentRequired must be true"
    assignment = one(resources(text, origin, "Microsoft.Graph/appRoleAssignedTo"), "app role assignment")
    assert isinstance(assignment.body.get("principalId"), Expr) and assignment.body["principalId"].text == "frontendPrincipalId", \
        f"{origin}: the role must be assigned to the front end's managed identity"
    assert isinstance(assignment.body.get("resourceId"), Expr) and assignment.body["resourceId"].text == f"{sp.symbol}.id", \
        f"{origin}: the assignment's resource must be the back end's service principal"
    assert isinstance(assignment.body.get("appRoleId"), Expr) and isinstance(roles[0].get("id"), Expr) \
        and assignment.body["appRoleId"].text == roles[0]["id"].text, f"{origin}: the assignment must name the app's role"


def check_database(text: str, origin: str = "database.bicep") -> None:
    """PostgreSQL: private only, no password, TLS 1.2+ required, reached by its public name
    through its own privatelink zone."""
    server = one(resources(text, origin, "Microsoft.DBforPostgreSQL/flexibleServers"), "flexible server")
    props = server.body.get("properties", {})
    assert dig(props, "network", "publicNetworkAccess") == "Disabled", \
        f"{origin}: the server's publicNetworkAccess must be 'Disabled', is {dig(props, 'network', 'publicNetworkAccess')!r}"
    assert dig(props, "authConfig", "passwordAuth") == "Disabled", f"{origin}: passwordAuth must be 'Disabled' (Entra tokens only)"
    assert dig(props, "authConfig", "activeDirectoryAuth") == "Enabled", f"{origin}: activeDirectoryAuth must be 'Enabled'"
    assert "administratorLoginPassword" not in props, f"{origin}: no administrator password"
    configs = {d.body.get("name"): dig(d.body, "properties", "value")
               for d in resources(text, origin, "Microsoft.DBforPostgreSQL/flexibleServers/configurations")}
    assert configs.get("require_secure_transport") == "on", f"{origin}: require_secure_transport must be 'on'"
    assert configs.get("ssl_min_protocol_version") in ("TLSv1.2", "TLSv1.3"), f"{origin}: ssl_min_protocol_version must be TLSv1.2 or higher"
    admin = one(resources(text, origin, "Microsoft.DBforPostgreSQL/flexibleServers/administrators"), "Entra administrator")
    assert dig(admin.body, "properties", "principalType") == "ServicePrincipal", f"{origin}: the administrator is the back end's managed identity (ServicePrincipal)"

    endpoint = one(resources(text, origin, "Microsoft.Network/privateEndpoints"), f"private endpoint in {origin}")
    connection = one(dig(endpoint.body, "properties", "privateLinkServiceConnections", default=[]), "private link connection")
    assert dig(connection, "properties", "groupIds") == ["postgresqlServer"], f"{origin}: the private endpoint's group must be 'postgresqlServer'"
    target = dig(connection, "properties", "privateLinkServiceId")
    assert isinstance(target, Expr) and target.text == f"{server.symbol}.id", f"{origin}: the private endpoint must point at the server"
    zone = one(resources(text, origin, "Microsoft.Network/privateDnsZones"), f"private DNS zone in {origin}")
    assert zone.body.get("name") == "privatelink.postgres.database.azure.com", f"{origin}: the zone must be privatelink.postgres.database.azure.com"
    link = one(resources(text, origin, "Microsoft.Network/privateDnsZones/virtualNetworkLinks"), "zone link")
    assert isinstance(dig(link.body, "properties", "virtualNetwork", "id"), Expr), f"{origin}: the zone must be linked to the VNet"
    group = one(resources(text, origin, "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"), "zone group")
    configs = dig(group.body, "properties", "privateDnsZoneConfigs", default=[])
    assert any(isinstance(dig(c, "properties", "privateDnsZoneId"), Expr) for c in configs), f"{origin}: the zone group must register the endpoint in the zone"
    # The certificate names NAME.postgres.database.azure.com only: hand out that name.
    assert re.search(r"^output host string = \w+\.properties\.fullyQualifiedDomainName$", text, re.M), \
        f"{origin}: output host must be the server's public name (fullyQualifiedDomainName)"


def check_backend_egress(text: str, origin: str) -> None:
    """A back end is VNet-integrated with route-all exactly when it is given a subnet."""
    site = one(resources(text, origin, "Microsoft.Web/sites"), f"Microsoft.Web/sites in {origin}")
    props = site.body.get("properties", {})
    subnet = props.get("virtualNetworkSubnetId")
    assert isinstance(subnet, Expr) and subnet.text == "empty(egressSubnetId) ? null : egressSubnetId", \
        f"{origin}: virtualNetworkSubnetId must be egressSubnetId (when given), is {subnet}"
    route = dig(props, "outboundVnetRouting", "applicationTraffic")
    assert isinstance(route, Expr) and route.text == "!empty(egressSubnetId)", \
        f"{origin}: outboundVnetRouting.applicationTraffic must be on when integrated (the database's private address and zone)"


def check_keyvault(text: str, origin: str = "keyvault.bicep") -> None:
    vault = one(resources(text, origin, "Microsoft.KeyVault/vaults"), "key vault")
    assert dig(vault.body, "properties", "enableRbacAuthorization") is True, f"{origin}: the vault must use RBAC"
    assert "4633458b-17de-408a-b874-0445c86b69e6" in text, f"{origin}: the apps need Key Vault Secrets User"


def check_registry(text: str, origin: str = "registry.bicep") -> None:
    registry = one(resources(text, origin, "Microsoft.ContainerRegistry/registries"), "registry")
    assert dig(registry.body, "properties", "adminUserEnabled") is False, f"{origin}: the admin user must stay off"
    assert dig(registry.body, "properties", "anonymousPullEnabled") is False, f"{origin}: anonymous pull must stay off"
    assert "7f951dda-4ed3-4680-a7ca-43fe172d538d" in text, f"{origin}: the apps' identities need AcrPull"


# ---------------------------------------------------------------------------------------------
# Tests: the real files pass


def test_frontend():
    check_frontend(read("frontend.bicep"))


def test_backend_slot():
    check_backend_slot(read("backend-slot.bicep"))


def test_front_door():
    check_front_door(read("front-door.bicep"))


def test_app_gateway():
    check_app_gateway(read("app-gateway.bicep"))


def test_backend_service_endpoint():
    check_backend_service_endpoint(read("backend-service-endpoint.bicep"))


def test_backend_private_endpoint():
    check_backend_private_endpoint(read("backend-private-endpoint.bicep"))


def test_backend_open():
    check_backend_open(read("backend-open.bicep"))


def test_network():
    check_network(read("network.bicep"))


def test_main():
    check_main(read("main.bicep"))


def test_plan():
    check_plan(read("plan.bicep"))


def test_database():
    check_database(read("database.bicep"))


def test_backend_egress():
    for module in BACKEND_MODULES.values():
        check_backend_egress(read(module), module)


def test_keyvault():
    check_keyvault(read("keyvault.bicep"))


def test_backend_auth():
    check_backend_auth(read("backend-auth.bicep"))


def test_entra_app():
    check_entra_app(read("entra-app.bicep"))


def test_registry():
    check_registry(read("registry.bicep"))


# ---------------------------------------------------------------------------------------------
# Tests: each check fails when its property is dropped


def mutate(name: str, old: str, new: str) -> str:
    """A copy of module `name` with `old` replaced once by `new`; the copy must still parse,
    so the check below fails on the property and not on a syntax error."""
    text = read(name)
    assert text.count(old) >= 1, f"stale mutation: {old!r} is not in {name}"
    mutated = text.replace(old, new, 1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / name
        copy.write_text(mutated)
        parse(copy.read_text(), f"mutated copy of {name}")
    return mutated


def assert_caught(check, text: str, expected: str) -> None:
    try:
        check(text, "mutated")
    except AssertionError as error:
        assert expected in str(error), f"caught, but for another reason: {error}"
        return
    raise AssertionError(f"{check.__name__} did not notice the change ({expected})")


MUTATIONS = [
    # (module, check, old, new, what the failure must mention)
    ("frontend.bicep", check_frontend, "httpsOnly: true", "httpsOnly: false", "httpsOnly"),
    ("frontend.bicep", check_frontend, "      minTlsVersion: '1.2'", "      minTlsVersion: '1.0'", "minTlsVersion"),
    ("frontend.bicep", check_frontend, "ftpsState: 'Disabled'", "ftpsState: 'AllAllowed'", "ftpsState"),
    ("frontend.bicep", check_frontend, "      healthCheckPath: '/healthz'\n", "      healthCheckPath: '/healthz'\n      vnetRouteAllEnabled: true\n", "vnetRouteAllEnabled"),
    ("frontend.bicep", check_frontend, "      applicationTraffic: true\n", "", "outboundVnetRouting"),
    ("frontend.bicep", check_frontend, "'Microsoft.Web/sites@2025-03-01'", "'Microsoft.Web/sites@2024-04-01'", "predates outboundVnetRouting"),
    ("frontend.bicep", check_frontend, "numberOfWorkers: instanceCount", "numberOfWorkers: 1", "numberOfWorkers"),
    ("frontend.bicep", check_frontend, "applicationTraffic: true", "applicationTraffic: false", "outboundVnetRouting"),
    ("frontend.bicep", check_frontend, "      healthCheckPath: '/healthz'\n", "", "healthCheckPath"),
    ("frontend.bicep", check_frontend, "http20Enabled: true", "http20Enabled: false", "http20Enabled"),
    ("frontend.bicep", check_frontend, "    allow: false", "    allow: true", "basic publishing credentials"),
    ("frontend.bicep", check_frontend, "    virtualNetworkSubnetId: integrationSubnetId\n", "", "VNet-integrated"),
    ("frontend.bicep", check_frontend, "scmIpSecurityRestrictionsUseMain: false", "scmIpSecurityRestrictionsUseMain: true", "own rules"),
    ("frontend.bicep", check_frontend, "scmIpSecurityRestrictionsDefaultAction: 'Deny'", "scmIpSecurityRestrictionsDefaultAction: 'Allow'", "scmIpSecurityRestrictionsDefaultAction"),
    ("frontend.bicep", check_frontend, "        frontDoorId\n", "        'any'\n", "X-Azure-FDID"),
    ("frontend.bicep", check_frontend, "ipAddress: 'AzureFrontDoor.Backend'", "ipAddress: 'Any'", "service tag"),
    ("frontend.bicep", check_frontend, "      ipSecurityRestrictions: frontRules", "      ipSecurityRestrictions: []", "frontRules"),
    ("frontend.bicep", check_frontend, "empty(frontRules) ? 'Allow' : 'Deny'", "empty(frontDoorId) ? 'Allow' : 'Deny'", "ipSecurityRestrictionsDefaultAction"),
    ("frontend.bicep", check_frontend, "(!empty(appGatewaySubnetId) ? appGatewayRules : [])", "[]", "frontRules"),
    ("frontend.bicep", check_frontend, "    vnetSubnetResourceId: appGatewaySubnetId\n", "    ipAddress: '0.0.0.0/0'\n", "only the gateway subnet"),
    ("frontend.bicep", check_frontend, "    action: 'Allow'\n    vnetSubnetResourceId", "    action: 'Deny'\n    vnetSubnetResourceId", "only the gateway subnet"),
    ("network.bicep", check_network, "      serviceEndpoints: [\n        {\n          service: 'Microsoft.Web'", "      serviceEndpoints: [\n        {\n          service: 'Microsoft.Storage'", "Microsoft.Web service endpoint"),
    ("network.bicep", check_network, "var appGatewaySubnets = enableAppGatewaySubnet ?", "var appGatewaySubnets = true ?", "enableAppGatewaySubnet"),
    ("network.bicep", check_network, "name: appGatewaySubnetName\n", "name: integrationSubnetName\n", "snet-appgw"),
    ("app-gateway.bicep", check_app_gateway, "path: '/healthz'", "path: '/'", "/healthz"),
    ("app-gateway.bicep", check_app_gateway, "pickHostNameFromBackendHttpSettings: true", "pickHostNameFromBackendHttpSettings: false", "pickHostNameFromBackendHttpSettings"),
    ("app-gateway.bicep", check_app_gateway, "pickHostNameFromBackendAddress: true", "pickHostNameFromBackendAddress: false", "pickHostNameFromBackendAddress"),
    ("app-gateway.bicep", check_app_gateway, "          port: 443\n          protocol: 'Https'", "          port: 80\n          protocol: 'Http'", "HTTPS on 443"),
    ("app-gateway.bicep", check_app_gateway, "minProtocolVersion: 'TLSv1_2'", "minProtocolVersion: 'TLSv1_1'", "TLS 1.2"),
    ("app-gateway.bicep", check_app_gateway, "        'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'", "        'TLS_RSA_WITH_AES_128_CBC_SHA256'", "cipherSuites"),
    ("app-gateway.bicep", check_app_gateway, "      policyType: 'CustomV2'\n      minProtocolVersion: 'TLSv1_2'", "      policyType: 'Predefined'\n      policyName: 'AppGwSslPolicy20150501'", "TLS 1.2"),
    ("app-gateway.bicep", check_app_gateway, "              fqdn: backendHostName", "              fqdn: 'example.com'", "default host name"),
    ("app-gateway.bicep", check_app_gateway, "          protocol: 'Http'\n", "          protocol: 'Https'\n", "certificate"),
    ("app-gateway.bicep", check_app_gateway, "    publicIPAllocationMethod: 'Static'", "    publicIPAllocationMethod: 'Dynamic'", "static public IP"),
    ("main.bicep", check_main, "    appGatewaySubnetId: network.outputs.appGatewaySubnetId\n", "    appGatewaySubnetId: ''\n", "gateway subnet"),
    ("main.bicep", check_main, "    enableAppGatewaySubnet: usesAppGateway", "    enableAppGatewaySubnet: true", "enableAppGatewaySubnet"),
    ("main.bicep", check_main, "module appGateway 'modules/app-gateway.bicep' = if (usesAppGateway)", "module appGateway 'modules/app-gateway.bicep' = if (true)", "exactly when front == 'appGateway'"),
    ("main.bicep", check_main, "    subnetId: network.outputs.appGatewaySubnetId", "    subnetId: network.outputs.integrationSubnetId", "subnet the front end allows"),
    ("main.bicep", check_main, "    backendHostName: frontend.outputs.defaultHostName", "    backendHostName: backendHostName", "front end's default host name"),
    ("backend-slot.bicep", check_backend_slot, "    virtualNetworkSubnetId: empty(egressSubnetId) ? null : egressSubnetId\n", "", "per slot"),
    ("backend-slot.bicep", check_backend_slot, "scmIpSecurityRestrictionsUseMain: true", "scmIpSecurityRestrictionsUseMain: false", "SCM site"),
    ("backend-slot.bicep", check_backend_slot, "  name: 'scm'\n  properties: {\n    allow: false", "  name: 'scm'\n  properties: {\n    allow: true", "basic publishing"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint, "    integrationSubnetId: integrationSubnetId\n    egressSubnetId", "    integrationSubnetId: 'other'\n    egressSubnetId", "same integration subnet"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint, "    egressSubnetId: egressSubnetId\n  }\n}", "    egressSubnetId: ''\n  }\n}", "VNet-integrated as production"),
    ("front-door.bicep", check_front_door, "probePath: '/healthz'", "probePath: '/'", "/healthz"),
    ("front-door.bicep", check_front_door, "originHostHeader: originHostName", "originHostHeader: 'example.com'", "originHostHeader"),
    ("front-door.bicep", check_front_door, "    // No cacheConfiguration", "    cacheConfiguration: {\n      queryStringCachingBehavior: 'IgnoreQueryString'\n    }\n    // No", "cached"),
    ("front-door.bicep", check_front_door, "forwardingProtocol: 'HttpsOnly'", "forwardingProtocol: 'MatchRequest'", "HttpsOnly"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint,
     "ipSecurityRestrictionsDefaultAction: 'Deny'", "ipSecurityRestrictionsDefaultAction: 'Allow'", "ipSecurityRestrictionsDefaultAction"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint,
     "scmIpSecurityRestrictionsUseMain: true", "scmIpSecurityRestrictionsUseMain: false", "SCM"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint,
     "vnetSubnetResourceId: integrationSubnetId", "ipAddress: 'Any'", "vnetSubnetResourceId"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint, "httpsOnly: true", "httpsOnly: false", "httpsOnly"),
    ("backend-slot.bicep", check_backend_slot,
     "      remoteDebuggingEnabled: false\n      ipSecurityRestrictionsDefaultAction: 'Deny'", "      remoteDebuggingEnabled: false\n      ipSecurityRestrictionsDefaultAction: 'Allow'", "does not inherit"),
    ("backend-slot.bicep", check_backend_slot,
     "      remoteDebuggingEnabled: false\n      ipSecurityRestrictionsDefaultAction: 'Deny'\n      ipSecurityRestrictions: [\n        {\n          name: 'allow-integration-subnet'\n          description: 'The front end, through its VNet integration and the Microsoft.Web service endpoint'\n          action: 'Allow'\n          priority: 100\n          vnetSubnetResourceId: integrationSubnetId", "      remoteDebuggingEnabled: false\n      ipSecurityRestrictionsDefaultAction: 'Deny'\n      ipSecurityRestrictions: [\n        {\n          name: 'allow-integration-subnet'\n          description: 'The front end, through its VNet integration and the Microsoft.Web service endpoint'\n          action: 'Allow'\n          priority: 100\n          ipAddress: 'Any'", "allow only the integration subnet"),
    ("backend-private-endpoint.bicep", check_backend_private_endpoint,
     "publicNetworkAccess: 'Disabled'", "publicNetworkAccess: 'Enabled'", "publicNetworkAccess"),
    ("backend-private-endpoint.bicep", check_backend_private_endpoint,
     "name: 'privatelink.azurewebsites.net'", "name: 'privatelink.example.net'", "privatelink.azurewebsites.net"),
    ("backend-private-endpoint.bicep", check_backend_private_endpoint, "'sites'", "'scm'", "group"),
    ("backend-private-endpoint.bicep", check_backend_private_endpoint,
     "      minTlsVersion: '1.2'", "      minTlsVersion: '1.1'", "minTlsVersion"),
    ("backend-open.bicep", check_backend_open, "ftpsState: 'Disabled'", "ftpsState: 'FtpsOnly'", "ftpsState"),
    ("backend-service-endpoint.bicep", check_backend_service_endpoint, "      numberOfWorkers: instanceCount\n", "", "numberOfWorkers"),
    ("backend-private-endpoint.bicep", check_backend_private_endpoint, "numberOfWorkers: instanceCount", "numberOfWorkers: 2", "numberOfWorkers"),
    ("main.bicep", check_main, "(usesDatabase) ? planCapacity : 1", "planCapacity", "backendInstanceCount"),
    ("main.bicep", check_main, "    frontDoorId: frontDoorId\n", "    frontDoorId: ''\n", "frontDoorId"),
    ("main.bicep", check_main, "    name: 'FRONT_DOOR_ID'\n    value: frontDoorId", "    name: 'FRONT_DOOR_ID'\n    value: ''", "FRONT_DOOR_ID"),
    ("main.bicep", check_main, "    value: 'entra'\n  }\n  {\n    name: 'AZURE_CLIENT_ID'", "    value: 'password'\n  }\n  {\n    name: 'AZURE_CLIENT_ID'", "DB_AUTH=entra"),
    ("plan.bicep", check_plan, "perSiteScaling: capacity > 1", "perSiteScaling: false", "perSiteScaling"),
    ("main.bicep", check_main, "if (lockdownMode == 'privateEndpoint')", "if (lockdownMode != 'none')", "backend-private-endpoint"),
    ("main.bicep", check_main, "value: 'x-client-ip'", "value: 'x-forwarded-for'", "CLIENT_IP_SOURCE"),
    ("main.bicep", check_main, "    value: diagTokenRef\n", "    value: diagToken\n", "Key Vault reference"),
    ("network.bicep", check_network, "serviceName: 'Microsoft.Web/serverFarms'", "serviceName: 'Microsoft.Web/hostingEnvironments'", "delegated"),
    ("main.bicep", check_main, "module backendAuthSettings 'modules/backend-auth.bicep' = {", "module backendAuthSettings 'modules/backend-auth.bicep' = if (usesEntra) {", "both modes"),
    ("main.bicep", check_main, "    enabled: usesEntra\n", "    enabled: true\n", "backend-auth enabled"),
    ("main.bicep", check_main, "    name: 'ENTRA_ALLOWED_APPS'\n    value: identities.outputs.frontendClientId",
     "    name: 'ENTRA_ALLOWED_APPS'\n    value: identities.outputs.backendClientId", "ENTRA_ALLOWED_APPS"),
    ("main.bicep", check_main, "    name: 'BACKEND_TOKEN_RESOURCE'\n    value: backendAppIdUri",
     "    name: 'BACKEND_TOKEN_RESOURCE'\n    value: '${backendAppIdUri}/.default'", "BACKEND_TOKEN_RESOURCE"),
    ("main.bicep", check_main, "      identities.outputs.frontendPrincipalId\n    ]\n  }\n  dependsOn",
     "      identities.outputs.backendPrincipalId\n    ]\n  }\n  dependsOn", "allowedPrincipalIds"),
    ("backend-auth.bicep", check_backend_auth, "requireAuthentication: true", "requireAuthentication: false", "requireAuthentication"),
    ("backend-auth.bicep", check_backend_auth, "'Return401'", "'RedirectToLoginPage'", "Return401"),
    ("backend-auth.bicep", check_backend_auth, "        '/healthz'\n", "        '/healthz'\n        '/api'\n", "excludedPaths"),
    ("backend-auth.bicep", check_backend_auth, "        '/diag/env'\n", "        '/diag/*'\n", "excludedPaths"),
    ("backend-auth.bicep", check_backend_auth, "      tokenStore: {\n        enabled: false", "      tokenStore: {\n        enabled: true", "token store"),
    ("backend-auth.bicep", check_backend_auth, "@minLength(1)\n@description('Client IDs", "@description('Client IDs", "allowedApplications"),
    ("backend-auth.bicep", check_backend_auth, "allowedApplications: allowedApplications", "allowedApplications: []", "allowedApplications"),
    ("backend-auth.bicep", check_backend_auth, "identities: allowedPrincipalIds", "identities: []", "allowedPrincipalIds"),
    ("backend-auth.bicep", check_backend_auth, "      enabled: enabled\n      runtimeVersion", "      enabled: true\n      runtimeVersion", "platform.enabled"),
    ("backend-auth.bicep", check_backend_auth, "        enabled: enabled\n        isAutoProvisioned", "        enabled: true\n        isAutoProvisioned", "azureActiveDirectory.enabled"),
    ("entra-app.bicep", check_entra_app, "appRoleAssignmentRequired: true", "appRoleAssignmentRequired: false", "appRoleAssignmentRequired"),
    ("entra-app.bicep", check_entra_app, "  principalId: frontendPrincipalId", "  principalId: backendServicePrincipal.id", "front end's managed identity"),
    ("entra-app.bicep", check_entra_app, "        'Application'\n", "        'User'\n", "applications only"),
    ("keyvault.bicep", check_keyvault, "enableRbacAuthorization: true", "enableRbacAuthorization: false", "RBAC"),
    ("registry.bicep", check_registry, "adminUserEnabled: false", "adminUserEnabled: true", "admin user"),
    ("registry.bicep", check_registry, "anonymousPullEnabled: false", "anonymousPullEnabled: true", "anonymous pull"),
    ("backend-open.bicep", check_backend_open, "category: 'AppServiceConsoleLogs'", "category: 'AppServiceAppLogs'", "AppServiceConsoleLogs"),
    ("database.bicep", check_database, "      publicNetworkAccess: 'Disabled'", "      publicNetworkAccess: 'Enabled'", "publicNetworkAccess"),
    ("database.bicep", check_database, "passwordAuth: 'Disabled'", "passwordAuth: 'Enabled'", "passwordAuth"),
    ("database.bicep", check_database, "    value: 'on'", "    value: 'off'", "require_secure_transport"),
    ("database.bicep", check_database, "value: 'TLSv1.2'", "value: 'TLSv1'", "ssl_min_protocol_version"),
    ("database.bicep", check_database, "'postgresqlServer'", "'sites'", "postgresqlServer"),
    ("database.bicep", check_database, "name: 'privatelink.postgres.database.azure.com'", "name: 'privatelink.database.windows.net'", "privatelink.postgres"),
    ("database.bicep", check_database, "output host string = server.properties.fullyQualifiedDomainName",
     "output host string = privateEndpoint.properties.customDnsConfigs[0].ipAddresses[0]", "public name"),
    ("backend-private-endpoint.bicep", lambda text, origin: check_backend_egress(text, origin),
     "applicationTraffic: !empty(egressSubnetId)", "applicationTraffic: false", "applicationTraffic"),
    ("main.bicep", check_main, "var backendEgressSubnetId = usesDatabase ? network.outputs.integrationSubnetId : ''",
     "var backendEgressSubnetId = ''", "VNet-integrated"),
    ("main.bicep", check_main, "    administratorPrincipalId: identities.outputs.backendPrincipalId",
     "    administratorPrincipalId: identities.outputs.frontendPrincipalId", "Entra administrator"),
]


def make_mutation_test(module, check, old, new, expected):
    def test():
        assert_caught(check, mutate(module, old, new), expected)

    words = re.sub(r"[^a-z0-9]+", "_", f"{module.removesuffix('.bicep')} {expected}".lower()).strip("_")
    test.__name__ = f"test_mutation_{words}"
    return test


for _mutation in MUTATIONS:
    _test = make_mutation_test(*_mutation)
    while _test.__name__ in globals():
        _test.__name__ += "_"
    globals()[_test.__name__] = _test


def test_every_site_module_is_checked():
    """A new module with a Microsoft.Web/sites must get its own check here."""
    checked = {"frontend.bicep", "backend-auth.bicep", "backend-slot.bicep", *BACKEND_MODULES.values()}
    for path in sorted(MODULES.glob("*.bicep")):
        if resources(path.read_text(), path.name, "Microsoft.Web/sites"):
            assert path.name in checked, f"{path.name} declares a site that no check covers"


# ---------------------------------------------------------------------------------------------


def main() -> int:
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except AssertionError as error:
            failed += 1
            print(f"FAIL {name}: {error}")
        except Exception:  # noqa: BLE001 - report every failure, then go on
            failed += 1
            print(f"FAIL {name}: crashed")
            traceback.print_exc()
        else:
            print(f"ok   {name}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
