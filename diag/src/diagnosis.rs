//! lockdown's one diagnosis vocabulary: every code the front end, `/diag`, the path report and
//! `probe smoke` can give, each with one meaning and one next step. Callers add their context
//! (which host, which address, what the check expected) in their own message; the meaning and
//! the next step live here and nowhere else. `docs/deploy.md`'s troubleshooting tables are
//! generated from this table ([`troubleshooting_markdown`]) and a test keeps them equal.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where on the path a code belongs: groups the troubleshooting tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// The path itself: DNS, TCP, TLS, HTTP framing.
    Network,
    /// App Service (or a gateway in front of it) answered before the app.
    Platform,
    /// The front end's call to the back end.
    Backend,
    /// The back end refused the front end's Entra token.
    Token,
    /// The back end's own hop: its PostgreSQL database.
    Database,
    /// A smoke check's expectation did not hold.
    Expectation,
    /// A smoke check could not run (nothing was verified).
    NotRun,
}

macro_rules! codes {
    ($( $variant:ident = $code:literal, $family:ident, meaning: $meaning:literal, next: $next:literal; )*) => {
        /// A diagnosis code. Serialised as its `snake_case` string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( #[doc = $meaning] $variant, )*
        }

        impl Code {
            /// Every code, in the order of the troubleshooting tables.
            pub const ALL: &[Code] = &[$(Code::$variant),*];

            /// The stable `snake_case` code.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            /// What the code means, in one sentence.
            pub const fn meaning(self) -> &'static str {
                match self { $(Code::$variant => $meaning),* }
            }

            /// The next step.
            pub const fn next_step(self) -> &'static str {
                match self { $(Code::$variant => $next),* }
            }

            /// Where on the path it belongs.
            pub const fn family(self) -> Family {
                match self { $(Code::$variant => Family::$family),* }
            }

            /// The code named `code`, if it is one of lockdown's.
            pub fn parse(code: &str) -> Option<Self> {
                match code { $($code => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

codes! {
    DnsFailure = "dns_failure", Network,
        meaning: "the name did not resolve from where the check ran (NXDOMAIN, SERVFAIL, timeout)",
        next: "On the front end, DNS goes through `127.0.0.11` to the VNet's DNS. With custom DNS servers on the VNet, they must forward `azurewebsites.net` (and `privatelink.azurewebsites.net`) to Azure DNS `168.63.129.16`. To override for the app only, set `WEBSITE_DNS_SERVER` (and `WEBSITE_DNS_ALT_SERVER`). Check with `GET /diag/resolve?host=...`.";
    ConnectTimeout = "connect_timeout", Network,
        meaning: "TCP connect did not complete. App Service's own tooling gives up after 21 s: a timeout of that length means something drops the packets.",
        next: "An NSG rule on `snet-integration` (outbound) or on the private-endpoint subnet, a firewall or NVA behind a route table (route-all sends *all* outbound traffic through the VNet and its UDRs), or a missing route. Check the effective routes and NSG flow logs. `/diag/tcpping` shows the source address the kernel chose.";
    ConnectRefused = "connect_refused", Network,
        meaning: "the address answered with a reset",
        next: "Nothing listens there. For a private endpoint IP, the endpoint may be pending or rejected (`az network private-endpoint show ... --query privateLinkServiceConnections[0].privateLinkServiceConnectionState`). For the app, see `app_stopped`, and check that the container listens on `PORT`/`WEBSITES_PORT`.";
    NetworkUnreachable = "network_unreachable", Network,
        meaning: "no route to the address",
        next: "From an app: the VNet integration's routes (UDR, NSG) do not reach it. From here: this machine has no route to the address, so the check cannot tell anything about the lockdown.";
    TlsFailure = "tls_failure", Network,
        meaning: "the TLS handshake failed",
        next: "You called the private IP or a custom name without a certificate for it. Call `https://<app>.azurewebsites.net` and let DNS give the private address. A TLS-intercepting firewall on the route-all path also shows up here.";
    LocalResourceExhausted = "local_resource_exhausted", Network,
        meaning: "the app itself ran out of a local resource (`Too many open files`: EMFILE/ENFILE; or memory) before anything was sent: no network fault was seen",
        next: "Look at the app, not at VNet integration: its open-file limit (`ulimit -n`; 1024 is common in containers) against `MAX_CONNECTIONS` (each client connection and each outbound connection is one file), connections left open (idle keep-alive clients: `IDLE_TIMEOUT_MS`, `HEADER_READ_TIMEOUT_MS`), and its memory. Scale out or lower the load; the relay answers 503 meanwhile.";
    BadResponse = "bad_response", Network,
        meaning: "something answered, but not HTTP",
        next: "The port belongs to something else than the app.";
    PrivatelinkZoneMissing = "privatelink_zone_missing", Network,
        meaning: "an Azure service's name resolved through no `privatelink` zone: the lookup never left public DNS (or a zone of your own answered for the public name)",
        next: "Give the service a private endpoint with a DNS zone group in the zone the catalogue names (`docs/azure-services.md`; the message names it), and link that zone to the VNet the app resolves through. With custom DNS servers, forward the service's public suffix to Azure DNS `168.63.129.16`.";
    PrivatelinkZoneNotLinked = "privatelink_zone_not_linked", Network,
        meaning: "an Azure service's name goes through its `privatelink` zone's name, yet resolved to a public address: that zone does not answer where the lookup ran",
        next: "Link the zone the message names to the VNet the app is integrated with (a virtual network link), with the private endpoint's A record in it (its zone group). With custom DNS servers, forward the zone to Azure DNS `168.63.129.16`, or set `WEBSITE_DNS_SERVER`.";
    WrongPrivatelinkZone = "wrong_privatelink_zone", Network,
        meaning: "an Azure service's name resolved through another `privatelink` zone than the service's own",
        next: "Put the endpoint's record in the zone the catalogue names for the service (Key Vault: `privatelink.vaultcore.azure.net`, not `privatelink.vault.azure.net`), link that zone, and remove the hand-made CNAME or record that points elsewhere.";
    CalledByAddress = "called_by_address", Network,
        meaning: "a TLS service is called by an IP address or by its `privatelink` name, which no certificate of the service carries",
        next: "Call the service by its public name (`NAME.vault.azure.net`, `NAME.postgres.database.azure.com`, `APP.azurewebsites.net`): it resolves to the private endpoint through the privatelink zone, and the certificate names it. Azure SQL also refuses logins that do not name the server.";
    TlsNameMismatch = "tls_name_mismatch", Network,
        meaning: "the server's certificate does not name the host the check asked for (the SNI)",
        next: "Something else answers on that address: a private endpoint of another resource, a stale A record in the zone, or a TLS-inspecting firewall. `/diag/tls` lists the names the certificate carries; `/diag/resolve` shows where the name leads.";
    TlsExpired = "tls_expired", Network,
        meaning: "the server's certificate (or one in its chain) has expired or is not valid yet",
        next: "Azure renews its own certificates: an expired one is a TLS-inspecting firewall or a server of your own. Check this machine's clock too.";
    TlsUntrusted = "tls_untrusted", Network,
        meaning: "the server's certificate chain does not lead to a trusted root",
        next: "A TLS-inspecting firewall or proxy on the route-all path signs with its own CA: exempt the service's names from inspection, or trust that CA. For a server of your own, give its CA to the check.";
    NotPostgres = "not_postgres", Network,
        meaning: "the port answered, but not as PostgreSQL (no answer to `SSLRequest`)",
        next: "The address or port belongs to something else: check the port (5432; 6432 for PgBouncer) and that the name resolves to the server's private endpoint.";
    PostgresNoTls = "postgres_no_tls", Network,
        meaning: "PostgreSQL answered, but refused TLS (`N` to `SSLRequest`)",
        next: "Azure Database for PostgreSQL always offers TLS: this is another server. Turn `ssl = on` on a server of your own.";
    AccessRestricted = "access_restricted", Platform,
        meaning: "App Service's access restrictions refused the caller: `403 Ip Forbidden`, with the caller's address as App Service saw it in `x-ms-forbidden-ip` (Premium plans may replace the page with a custom one)",
        next: "An access rule denied the caller. `x-ms-forbidden-ip` says where App Service saw the call from: the service-endpoint IPv6 form of an integration-subnet address means the call came through the service endpoint and the rule does not allow that subnet (it must name the **integration subnet** by resource ID, taken from Azure, never typed); any other address means the call did not leave through the VNet (check VNet integration, route-all, and the `Microsoft.Web` service endpoint on the subnet). Right after the service endpoint was enabled this can last minutes, rarely hours: wait (`--wait`). `AppServiceIPSecAuditLogs` shows each decision.";
    PublicAccessDisabled = "public_access_disabled", Platform,
        meaning: "a call meant for the private endpoint reached the app's public address, which refused it (`403 Ip Forbidden`): the name goes through `privatelink.azurewebsites.net`, yet the caller's DNS gave the public address",
        next: "Fix the DNS, not the access rules: link the `privatelink.azurewebsites.net` zone to the VNet the caller resolves through (with a zone group giving the endpoint's A record); with custom DNS servers, forward `azurewebsites.net` to Azure DNS `168.63.129.16`, or set `WEBSITE_DNS_SERVER`. `/diag/resolve` from the caller must then show the private address. From the internet, this denial is expected.";
    AppStopped = "app_stopped", Platform,
        meaning: "the app is stopped: App Service answered `403 Site Disabled` for it",
        next: "Start the app (`az webapp start --resource-group RG --name APP`); check that the plan is not stopped and the subscription not disabled.";
    AppUnavailable = "app_unavailable", Platform,
        meaning: "no instance of the app answered, so App Service answered 503 itself (`Server: nginx`, the \"Application Error\" page, sometimes `Retry-After`)",
        next: "The app's instances are down or still starting: read its log stream and container start-up, check that it listens on `PORT`/`WEBSITES_PORT`, and that its health check passes.";
    GatewayRefused = "gateway_refused", Platform,
        meaning: "a gateway in front of the app answered 403 itself (for example `Server: Microsoft-Azure-Application-Gateway/v2`): the app was not reached, so App Service's lockdown is not what refused",
        next: "Look at the gateway: its WAF policy, listener and rules, and which backend pool it forwards to. App Service's access restrictions were not involved.";
    KeyvaultReferenceUnresolved = "keyvault_reference_unresolved", Platform,
        meaning: "an app setting still holds its literal `@Microsoft.KeyVault(...)` reference: App Service could not resolve it (`/diag/env` lists the names, never the values)",
        next: "The vault is not reachable on the platform's path, or the identity may not read it. With the vault behind a private endpoint, set `vnetRouteAllEnabled`/`outboundVnetRouting` so the platform resolves references through the VNet (and link `privatelink.vaultcore.azure.net` to it); check the vault's firewall, that the reference names the app's identity (`keyVaultReferenceIdentity` for a user-assigned one), and that the identity has *Key Vault Secrets User* (or an access policy). The portal's Environment variables page shows each reference's status; restart the app after fixing.";
    BackendTimeout = "backend_timeout", Backend,
        meaning: "the front end connected to the back end but got no answer in time / the call failed after connecting",
        next: "The back end is starting, overloaded or crashing: its log stream and `/healthz`. `BACKEND_TIMEOUT_MS` (10 s) is the front end's limit.";
    BackendUnreachable = "backend_unreachable", Backend,
        meaning: "the front end connected to the back end but got no answer in time / the call failed after connecting",
        next: "The back end is starting, overloaded or crashing: its log stream and `/healthz`. `BACKEND_TIMEOUT_MS` (10 s) is the front end's limit.";
    BackendUnauthorized = "backend_unauthorized", Backend,
        meaning: "the back end answered 401 `unauthorized`",
        next: "`BACKEND_API_KEY` on the front end does not match `API_KEYS` on the back end. On the azd path, both come from the `backend-api-key` secret: check that the Key Vault references resolve (portal → Environment variables → status \"Resolved\"), and restart both apps after rotating.";
    BackendForbidden = "backend_forbidden", Backend,
        meaning: "403 from the back end with none of App Service's signals (status line, `x-ms-forbidden-ip`, `Server`, page)",
        next: "Another layer in front of the back end refused (a WAF, a proxy, App Service Authentication with another configuration), or the app itself: `/diag/http` shows the status line and headers.";
    BackendError = "backend_error", Backend,
        meaning: "the back end answered 5xx",
        next: "The back end itself failed: its log stream, with the request id from the front end's answer.";
    CallerNotAllowed = "caller_not_allowed", Backend,
        meaning: "the back end's own `ALLOWED_CALLERS` refused the caller's address (403 `caller_not_allowed`)",
        next: "The call did not leave through the integration subnet: check the front end's VNet integration and route-all, and that `ALLOWED_CALLERS` names the integration subnet (service-endpoint callers are compared by the IPv4 address they carry).";
    TokenUnavailable = "token_unavailable", Backend,
        meaning: "the front end got no token from its managed identity (the message quotes the identity endpoint and its `correlationId`)",
        next: "`AADSTS500011`: `BACKEND_TOKEN_RESOURCE` names no application in the tenant — use the application ID URI or client ID exactly, without `/.default`. \"No Managed Identity found\" / \"Unable to load the proper Managed Identity\": `AZURE_CLIENT_ID` must be the client ID of a user-assigned identity attached to the front end (unset it for the system-assigned one). `AADSTS501051` (not assigned to a role): assign `Backend.Call` to the identity. `IDENTITY_ENDPOINT is not set`: turn on a managed identity. A 500 that lasts: quote the `correlationId` to support.";
    AppServiceAuthRefused = "app_service_auth_refused", Backend,
        meaning: "the back end's platform answered 401/403 before the app",
        next: "App Service Authentication on the back end refused the token: its `allowedAudiences` must include `BACKEND_TOKEN_RESOURCE`, and `allowedApplications` / `allowedPrincipals` must name the front end's identity (never an empty list). The issuer must be `https://sts.windows.net/{tenant}/` for managed-identity (v1) tokens.";
    MissingToken = "missing_token", Token,
        meaning: "the back end wants a token and got none",
        next: "the back end wants an Entra token (AUTH_MODE=entra): set BACKEND_AUTH=entra and BACKEND_TOKEN_RESOURCE on the front end; if it is set, something between the apps strips the Authorization header";
    MalformedAuthorization = "malformed_authorization", Token,
        meaning: "the back end could not use the `Authorization` header (see [the credential](#the-credential-api-key-or-entra-id))",
        next: "something between the front end and the back end alters the Authorization header (a gateway or proxy)";
    MalformedToken = "malformed_token", Token,
        meaning: "the back end could not use the `Authorization` header (see [the credential](#the-credential-api-key-or-entra-id))",
        next: "the token the back end got is not an Entra access token: check that nothing between the apps rewrites Authorization";
    UnsupportedAlgorithm = "unsupported_algorithm", Token,
        meaning: "the back end could not use the `Authorization` header (see [the credential](#the-credential-api-key-or-entra-id))",
        next: "the token the back end got is not signed with RS256: it did not come from this front end's managed identity";
    UnknownKey = "unknown_key", Token,
        meaning: "the token is not from the back end's tenant",
        next: "the token was signed by another tenant's keys than the back end's: ENTRA_TENANT_ID (and ENTRA_AUTHORITY) on the back end must be the managed identity's tenant";
    InvalidSignature = "invalid_signature", Token,
        meaning: "the token is not from the back end's tenant",
        next: "the token's signature does not verify: ENTRA_TENANT_ID and ENTRA_AUTHORITY on the back end must be the managed identity's tenant and cloud";
    TokenExpired = "token_expired", Token,
        meaning: "the token's times do not fit the back end's clock",
        next: "the front end sent an expired token: check the clocks; the front end renews tokens 5 minutes before they expire";
    TokenNotYetValid = "token_not_yet_valid", Token,
        meaning: "the token's times do not fit the back end's clock",
        next: "the back end's clock is behind the token's: check the clocks, or raise ENTRA_LEEWAY_S a little";
    WrongTenant = "wrong_tenant", Token,
        meaning: "the token is not from the back end's tenant",
        next: "the front end's managed identity lives in another tenant than the back end's ENTRA_TENANT_ID";
    WrongIssuer = "wrong_issuer", Token,
        meaning: "the token is not from the back end's tenant",
        next: "the token's issuer is not the back end's tenant: check ENTRA_TENANT_ID on the back end";
    WrongAudience = "wrong_audience", Token,
        meaning: "the back end's app refused a token issued for another resource",
        next: "BACKEND_TOKEN_RESOURCE must be the back end's application ID URI (api://…) or client ID, without /.default, and the back end's ENTRA_AUDIENCES must list it";
    DelegatedToken = "delegated_token", Token,
        meaning: "the back end could not use the `Authorization` header (see [the credential](#the-credential-api-key-or-entra-id))",
        next: "the front end must call with its managed identity's own app-only token, not a user's token";
    AppNotAllowed = "app_not_allowed", Token,
        meaning: "the token is from another identity than the one the back end allows",
        next: "the back end's ENTRA_ALLOWED_APPS must list the client ID of this front end's managed identity (AZURE_CLIENT_ID for a user-assigned one)";
    ObjectNotAllowed = "object_not_allowed", Token,
        meaning: "the token is from another identity than the one the back end allows",
        next: "the back end's ENTRA_ALLOWED_OBJECTS must list the object (principal) ID of this front end's managed identity";
    RoleMissing = "role_missing", Token,
        meaning: "the token carries no `Backend.Call`",
        next: "assign the back end's app role (ENTRA_REQUIRED_ROLE) to the front end's managed identity (infra/scripts/auth.sh or the Bicep); a token fetched before the assignment lacks the role until it is renewed (managed-identity tokens are cached up to 24 h)";
    SigningKeysUnavailable = "signing_keys_unavailable", Token,
        meaning: "the back end cannot fetch Entra's signing keys",
        next: "the back end cannot fetch Entra ID's signing keys: check its outbound access to login.microsoftonline.com (ENTRA_AUTHORITY)";
    DatabaseDnsFailure = "database_dns_failure", Database,
        meaning: "the back end could not resolve its database's name (`DATABASE_URL`)",
        next: "The back end resolves through its VNet's DNS like any other call: the `privatelink.postgres.database.azure.com` zone must be linked to the VNet the back end is integrated with (or your DNS servers must forward `postgres.database.azure.com` to Azure DNS `168.63.129.16`). Check from the back end with `GET /diag/resolve?host=NAME.postgres.database.azure.com`.";
    DatabaseResolvesPublic = "database_resolves_public", Database,
        meaning: "the database's name resolved to a public address, and the connection then failed: the call went to the server's public side, which drops or refuses it",
        next: "Link the `privatelink.postgres.database.azure.com` zone (with the private endpoint's A record, through its zone group) to the back end's VNet, so the public name resolves to the private endpoint; `/diag/resolve` from the back end must then show a private address. Keep the public name in `DATABASE_URL`.";
    DatabaseConnectTimeout = "database_connect_timeout", Database,
        meaning: "the back end's TCP connect to its database did not complete in time (or found no route)",
        next: "Something between the back end's integration subnet and the database's private endpoint drops port 5432: an NSG on either subnet, a firewall behind route-all, or a missing route. `/diag/tcpping?host=NAME.postgres.database.azure.com&port=5432` from the back end shows the source address used.";
    DatabaseConnectRefused = "database_connect_refused", Database,
        meaning: "the database's address answered the back end's connect with a reset",
        next: "Nothing listens there: the server is stopped or starting (`az postgres flexible-server show --query state`), the private endpoint's connection is pending or rejected, or `DATABASE_URL` names the wrong port (5432).";
    DatabaseTlsNameMismatch = "database_tls_name_mismatch", Database,
        meaning: "the database's certificate does not name the host the back end connected to",
        next: "Write the server's public name in `DATABASE_URL` (`NAME.postgres.database.azure.com`), never its private address nor the `privatelink` name: that name resolves to the private endpoint through the zone, and the certificate carries it.";
    DatabaseTlsFailure = "database_tls_failure", Database,
        meaning: "the TLS handshake with the database failed (certificate chain not trusted, expired, or no TLS on the server)",
        next: "Azure's certificates chain to public roots the platform trusts; a TLS-inspecting firewall on the route-all path breaks that. For a server of your own, point `sslrootcert=` in `DATABASE_URL` at its CA. `sslmode=require` is refused on purpose: it checks nothing.";
    DatabaseAuthRefused = "database_auth_refused", Database,
        meaning: "the database refused the back end's login (password, token, role, or a `pg_hba`/firewall rule)",
        next: "With `DB_AUTH=entra`: the server must have Microsoft Entra authentication on, and the back end's managed identity must be a role of that exact name (`pgaadauth_create_principal`), the user in `DATABASE_URL`. With a password: rotate it in both places. The server's message is in the back end's log.";
    DatabaseTokenUnavailable = "database_token_unavailable", Database,
        meaning: "the back end could not get a token of its managed identity for the database (`DB_AUTH=entra`)",
        next: "Give the back end a managed identity (and, for a user-assigned one, set `AZURE_CLIENT_ID`); the token's resource is `DB_TOKEN_RESOURCE` (`https://ossrdbms-aad.database.windows.net`). The back end's log says what the identity endpoint answered.";
    DatabaseError = "database_error", Database,
        meaning: "the database failed otherwise (a query failed, the connection closed, the time ran out)",
        next: "Read the back end's log for the server's message; check the server's health and its connection limit against the back end's instances times `DB_POOL_SIZE`.";
    ReachableButShouldBeDenied = "reachable_but_should_be_denied", Expectation,
        meaning: "the back end answered the internet",
        next: "serviceEndpoint mode: the default action is still Allow, or a broader rule (an IP range, `Any`) wins by priority. privateEndpoint mode: `publicNetworkAccess` must be set to `Disabled` **explicitly**, because a private endpoint alone no longer blocks the public endpoint. In both modes, the **SCM site** (`<app>.scm.azurewebsites.net`) has its own rules: set `scmIpSecurityRestrictionsUseMain: true` (`--use-same-restrictions-for-scm-site true`).";
    EgressNotInSubnet = "egress_not_in_subnet", Expectation,
        meaning: "the connection left from a local address outside `source_in`",
        next: "This instance's outbound traffic does not go through the VNet: check the VNet integration (`virtualNetworkSubnetId`) and route-all (`vnetRouteAllEnabled` / `outboundVnetRouting`). With `instances = \"all\"`, one instance failing means that instance (restart it). `source_in` compares the socket's own local address, as the lab's suite does; the deployed suites check `caller_in` (what the back end saw), which does not depend on how the platform translates addresses.";
    CallerNotInSubnet = "caller_not_in_subnet", Expectation,
        meaning: "the back end saw the caller at an address outside `INTEGRATION_SUBNET` (or answered 403 `caller_not_allowed`)",
        next: "The front end's traffic does not leave through the integration subnet. Check VNet integration, route-all (`vnetRouteAllEnabled` / `outboundVnetRouting`), and in serviceEndpoint mode the `Microsoft.Web` service endpoint on that subnet. Without it, the back end sees a public outbound IP of the front end. Also check that `CLIENT_IP_SOURCE=x-client-ip`.";
    CallerUndecodable = "caller_undecodable", Expectation,
        meaning: "`caller_in` (what the back end saw) or `source_in` (the local address) is an IPv6 address that is not in App Service's service-endpoint form, so it cannot be compared with the check's IPv4 range",
        next: "A service-endpoint caller arrives as IPv6 in `fde4:8dba::/32` with its VNet IPv4 in the low 32 bits, and is compared by that IPv4; any other IPv6 address is not guessed at. If the call went through a service endpoint, the platform used another form: note the address (the evidence shows it) and report it. If the caller really is IPv6 (a dual-stack VNet), write the expectation as an IPv6 range. On the back end, `ALLOWED_CALLERS` refuses such a caller with a `caller_not_allowed` that says the same.";
    CallerUnknown = "caller_unknown", Expectation,
        meaning: "`caller_in` / `caller_auth` could not read the caller from the body",
        next: "The URL is not the front end's `/api/path` or the back end's `/api/caller`, or the back end is older than credential reporting.";
    UnexpectedCallerAuth = "unexpected_caller_auth", Expectation,
        meaning: "the back end let the front end in by another credential than expected (`none`, `api-key`)",
        next: "Set `AUTH_MODE=entra` on the back end and `BACKEND_AUTH=entra` on the front end (`auth.sh --mode entra`).";
    ResolvesPublic = "resolves_public", Expectation,
        meaning: "expected a private address, got a public one",
        next: "The `privatelink.azurewebsites.net` zone is missing, not **linked** to the VNet the front end is integrated with, or has no A record (zone group missing). With custom DNS, forward the zone to `168.63.129.16` or set `WEBSITE_DNS_SERVER`.";
    ResolvesPrivate = "resolves_private", Expectation,
        meaning: "the name resolves to a private address where it must resolve publicly",
        next: "A private endpoint or private DNS zone still answers for the name. With a private endpoint, service-endpoint access rules do not apply: remove the endpoint (`undo.sh`) or switch the suite to privateEndpoint mode.";
    NoPrivatelink = "no_privatelink", Expectation,
        meaning: "the answer has no `*.privatelink.*` CNAME",
        next: "The back end has no (approved) private endpoint, so public DNS does not delegate to privatelink. Check the endpoint and its connection state. In serviceEndpoint mode the check expects *no* privatelink hop: a hop there means a stale private endpoint, and App Service does not support service-endpoint rules next to a private endpoint. Run `undo.sh` or delete the endpoint.";
    UnexpectedPrivatelink = "unexpected_privatelink", Expectation,
        meaning: "the answer goes through a `privatelink` hop where it must not",
        next: "As `resolves_private`: a private endpoint exists for the back end.";
    NoAddress = "no_address", Expectation,
        meaning: "the name exists but has no address of the type asked",
        next: "The record is missing (an A record in the private zone, or `type = \"AAAA\"` on a name with only IPv4).";
    UnexpectedAnswer = "unexpected_answer", Expectation,
        meaning: "the name resolved where it must not (`ok = false`)",
        next: "The record the check expects to be gone still exists (a public record, or a zone still linked).";
    UnexpectedAddress = "unexpected_address", Expectation,
        meaning: "the name resolved, or the connection went, to an address outside the expected range (`address_in`)",
        next: "privateEndpoint mode: the name goes through `privatelink.azurewebsites.net` but the answer is not the endpoint's address, so the private DNS zone is not linked to the VNet or its A record is stale (re-create the zone group). Otherwise the check's range is wrong.";
    PartiallyReachable = "partially_reachable", Expectation,
        meaning: "some of the connects succeeded, not all",
        next: "One path or one instance behind the address fails: run the check with `instances = \"all\"` and more attempts to see which.";
    UnexpectedStatus = "unexpected_status", Expectation,
        meaning: "an HTTP answer with another status than `status`",
        next: "What the evidence shows: the status line, and which gate answered.";
    HeaderMissing = "header_missing", Expectation,
        meaning: "the answer lacks the response header the check expects (`header`; `x-azure-ref` when the check is about Front Door)",
        next: "Another hop answered than the one the check is about: without `x-azure-ref` the answer did not come through Azure Front Door (the URL is the app's own, or the route does not forward to it).";
    UnexpectedErrorCode = "unexpected_error_code", Expectation,
        meaning: "the app refused (or let through) the call with another error code than `error_code`",
        next: "Another gate than the one the check is about decided: for example `caller_not_allowed` (the network) where `unauthorized` (the credential) was expected.";
    InstanceNotPinned = "instance_not_pinned", Expectation,
        meaning: "a check pinned to one instance (`instances`) was answered by another (its `/diag` names itself in `X-Instance-Id`)",
        next: "The instance is gone: instances change with scaling, restarts and platform moves, so list them with `instances = \"all\"` rather than by ID. Or the app does not pin callers: `clientAffinityEnabled` must be on for per-instance checks. The result is not reported as the pinned instance's.";
    DiagUnreachable = "diag_unreachable", NotRun,
        meaning: "`probe smoke` could not call the app's `/diag` (the message says why: refused, timed out, certificate, name)",
        next: "The app's `url` in the suite, and that the app runs. From outside, a locked-down back end cannot be reached: run back-end checks from the front end.";
    DiagUnavailable = "diag_unavailable", NotRun,
        meaning: "the app answers 404 on `/diag`",
        next: "Set `DIAG_TOKEN` on the app (the Bicep sets it from Key Vault), and check that the app runs lockdown.";
    DiagUnauthorized = "diag_unauthorized", NotRun,
        meaning: "the app refused the token",
        next: "The suite's `token_env` variable must hold that app's `DIAG_TOKEN`.";
    DiagRateLimited = "diag_rate_limited", NotRun,
        meaning: "the app's `/diag` stayed busy (503) or rate-limited (429) for the runner's whole wait (two minutes of waiting as `Retry-After` says)",
        next: "Run fewer checks from that app at once, or raise `DIAG_CONCURRENCY` / `DIAG_BURST` / `DIAG_RATE_PER_S` on it.";
    DiagTargetDenied = "diag_target_denied", NotRun,
        meaning: "the app's `/diag` policy refused the target",
        next: "Add the target to the app's `DIAG_ALLOW` (the default allows RFC 1918, the app's own back end and Azure DNS).";
    DiagError = "diag_error", NotRun,
        meaning: "the app's `/diag` answered something `probe smoke` could not read",
        next: "The app runs another version of lockdown than the probe: deploy the same version.";
    Config = "config", NotRun,
        meaning: "the check's own settings could not be used where it runs (its DNS servers, its source address)",
        next: "Fix the suite or the machine running it: the message names the setting that failed.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Self::parse(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown diagnosis code {code:?}")))
    }
}

/// The troubleshooting tables of `docs/deploy.md`, generated from [`Code::ALL`]: one table of the
/// codes a failing check or call carries, one of the codes of a check that could not run.
pub fn troubleshooting_markdown() -> String {
    let table = |codes: &mut dyn Iterator<Item = &Code>| {
        let mut out = String::from("| code | what it means | next step |\n|---|---|---|\n");
        for code in codes {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                code.as_str(),
                code.meaning(),
                code.next_step()
            ));
        }
        out
    };
    format!(
        "Each failing check, and each failed call of the front end, carries one of these codes.\n\n{}\nWhen a check cannot run, its code says why (the check fails: nothing was verified).\n\n{}",
        table(&mut Code::ALL.iter().filter(|c| c.family() != Family::NotRun)),
        table(&mut Code::ALL.iter().filter(|c| c.family() == Family::NotRun)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_says_something() {
        for &code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            let back: Code = serde_json::from_value(serde_json::json!(code.as_str())).unwrap();
            assert_eq!(back, code);
            assert!(
                !code.meaning().is_empty() && !code.next_step().is_empty(),
                "{code}"
            );
            assert!(
                code.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
        assert_eq!(Code::parse("no_such_code"), None);
        assert!(serde_json::from_value::<Code>(serde_json::json!("no_such_code")).is_err());
    }

    #[test]
    fn codes_are_unique() {
        let mut names: Vec<_> = Code::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    /// The docs' tables are this module's table: `UPDATE_GOLDEN=1` rewrites them.
    #[test]
    fn the_troubleshooting_tables_are_generated_from_the_codes() {
        const START: &str = "<!-- diagnosis codes: generated from diag/src/diagnosis.rs -->\n";
        const END: &str = "<!-- end of diagnosis codes -->";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/deploy.md");
        let docs = std::fs::read_to_string(&path).unwrap();
        let start = docs
            .find(START)
            .expect("docs/deploy.md has the start marker")
            + START.len();
        let end = docs.find(END).expect("docs/deploy.md has the end marker");
        let generated = troubleshooting_markdown();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            let updated = format!("{}{generated}{}", &docs[..start], &docs[end..]);
            std::fs::write(&path, updated).unwrap();
            return;
        }
        assert!(
            docs[start..end] == generated,
            "docs/deploy.md's troubleshooting tables differ from diag::diagnosis (UPDATE_GOLDEN=1 cargo test -p diag rewrites them)"
        );
    }
}
