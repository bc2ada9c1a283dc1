//! Lockdown modes and the catalogue of misconfigurations (`--break NAME`), each turned into
//! concrete lab settings by [`Plan`].

use std::fmt;

use crate::dns::ZoneView;
use crate::emulator::{AccessRule, RuleAction, SiteNetworking};
use crate::front::{Front, SitePlan, WrongFront};
use crate::topology::{INTEGRATION_SUBNET, OTHER_SUBNET, net};

/// How the back end is locked down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `Microsoft.Web` service endpoint on the integration subnet + an access restriction
    /// allowing only that subnet.
    ServiceEndpoint,
    /// A private endpoint, the `privatelink.azurewebsites.net` zone linked to the VNet, and
    /// public network access disabled.
    PrivateEndpoint,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ServiceEndpoint => "service-endpoint",
            Self::PrivateEndpoint => "private-endpoint",
        })
    }
}

/// One misconfiguration from the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Break {
    /// The front end's egress does not leave through the integration subnet.
    FrontendNotIntegrated,
    /// The back end accepts anyone.
    NoAccessRestriction,
    /// The restriction allows another subnet than the integration subnet.
    WrongSubnet,
    /// The privatelink zone is not linked: the name resolves to the public address.
    PeDnsNotLinked,
    /// Public network access is still enabled next to the private endpoint.
    PePublicAccess,
    /// The DNS server does not answer.
    DnsDown,
    /// Connections from the integration subnet time out (an NSG or a firewall).
    EgressBlocked,
    /// Nothing listens behind the back end.
    BackendDown,
    /// The front end sends a wrong back-end key (with `--auth entra`: a token for another
    /// resource, which the back end refuses as `wrong_audience`).
    BadCredential,
    /// The back end's plan replaces App Service's 403 and 503 pages with its own (a Premium
    /// feature); the status lines and `x-ms-forbidden-ip` stay, and so does the lockdown.
    CustomErrorPages,
    /// An Application Gateway in front of the back end answers 403 itself, to every caller.
    GatewayInFront,
    /// The `privatelink.postgres.database.azure.com` zone is not linked to the back end's VNet:
    /// the database's name resolves to its public endpoint.
    DbDnsNotLinked,
    /// The database server's public network access is still enabled: it answers the internet.
    DbPublicAccess,
    /// The back end's `DATABASE_URL` names the database's private address instead of its
    /// public name (the certificate cannot match): the back end refuses to start.
    DbByAddress,
    /// An NSG or firewall drops the back end's packets to the database's private endpoint.
    DbEgressBlocked,
    /// `--front front-door`: the front end allows the `AzureFrontDoor.Backend` service tag
    /// without an `X-Azure-FDID` header filter: another customer's Front Door gets in.
    FdNoFdidCheck,
    /// `--front front-door`: the front end has no access restriction: it answers without Front
    /// Door.
    FdDirectOpen,
    /// The back end's SCM (Kudu) site answers the internet while the site is locked.
    ScmOpen,
    /// The SCM rules refuse the deploy runner's address.
    ScmBlocksDeploy,
    /// The back end's staging slot has no access restrictions.
    SlotOpen,
    /// The back end's `API_KEYS` still holds its Key Vault reference: App Service could not
    /// resolve it (the vault's firewall, its private endpoint, or the identity's access).
    KvReferenceUnresolved,
}

impl Break {
    /// Every break, in catalogue order.
    pub const ALL: [Break; 21] = [
        Self::FrontendNotIntegrated,
        Self::NoAccessRestriction,
        Self::WrongSubnet,
        Self::PeDnsNotLinked,
        Self::PePublicAccess,
        Self::DnsDown,
        Self::EgressBlocked,
        Self::BackendDown,
        Self::BadCredential,
        Self::CustomErrorPages,
        Self::GatewayInFront,
        Self::DbDnsNotLinked,
        Self::DbPublicAccess,
        Self::DbByAddress,
        Self::DbEgressBlocked,
        Self::FdNoFdidCheck,
        Self::FdDirectOpen,
        Self::ScmOpen,
        Self::ScmBlocksDeploy,
        Self::SlotOpen,
        Self::KvReferenceUnresolved,
    ];

    /// The `--break` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::FrontendNotIntegrated => "frontend-not-integrated",
            Self::NoAccessRestriction => "no-access-restriction",
            Self::WrongSubnet => "wrong-subnet",
            Self::PeDnsNotLinked => "pe-dns-not-linked",
            Self::PePublicAccess => "pe-public-access",
            Self::DnsDown => "dns-down",
            Self::EgressBlocked => "egress-blocked",
            Self::BackendDown => "backend-down",
            Self::BadCredential => "bad-credential",
            Self::CustomErrorPages => "custom-error-pages",
            Self::GatewayInFront => "gateway-in-front",
            Self::DbDnsNotLinked => "db-dns-not-linked",
            Self::DbPublicAccess => "db-public-access",
            Self::DbByAddress => "db-by-address",
            Self::DbEgressBlocked => "db-egress-blocked",
            Self::FdNoFdidCheck => "fd-no-fdid-check",
            Self::FdDirectOpen => "fd-direct-open",
            Self::ScmOpen => "scm-open",
            Self::ScmBlocksDeploy => "scm-blocks-deploy",
            Self::SlotOpen => "slot-open",
            Self::KvReferenceUnresolved => "kv-reference-unresolved",
        }
    }

    /// What is wrong, in a sentence.
    pub fn description(self) -> &'static str {
        match self {
            Self::FrontendNotIntegrated => {
                "the front end's egress does not leave through the integration subnet"
            }
            Self::NoAccessRestriction => "the back end accepts anyone",
            Self::WrongSubnet => {
                "the restriction allows another subnet than the integration subnet"
            }
            Self::PeDnsNotLinked => {
                "the privatelink zone is not linked: the name resolves to the public address"
            }
            Self::PePublicAccess => {
                "public network access is still enabled next to the private endpoint"
            }
            Self::DnsDown => "the DNS server does not answer",
            Self::EgressBlocked => {
                "connections from the integration subnet time out (an NSG or firewall)"
            }
            Self::BackendDown => "nothing listens behind the back end",
            Self::BadCredential => "the front end sends a wrong back-end key",
            Self::CustomErrorPages => {
                "the back end's plan serves custom 403/503 pages (the lockdown holds: nothing fails)"
            }
            Self::GatewayInFront => {
                "an Application Gateway in front of the back end answers 403 to every caller"
            }
            Self::DbDnsNotLinked => {
                "the database's privatelink zone is not linked: its name resolves to the public endpoint"
            }
            Self::DbPublicAccess => {
                "the database server still accepts the internet (public network access enabled)"
            }
            Self::DbByAddress => {
                "the back end's DATABASE_URL names the database's private address, not its name"
            }
            Self::DbEgressBlocked => {
                "an NSG drops the back end's packets to the database's private endpoint"
            }
            Self::FdNoFdidCheck => {
                "the front end allows the AzureFrontDoor.Backend tag without an X-Azure-FDID filter: another Front Door profile gets in"
            }
            Self::FdDirectOpen => {
                "the front end has no access restriction: it answers without Front Door"
            }
            Self::ScmOpen => {
                "the back end's SCM (Kudu) site answers the internet while the site is locked"
            }
            Self::ScmBlocksDeploy => "the SCM rules refuse the deploy runner's address",
            Self::SlotOpen => "the back end's staging slot has no access restrictions",
            Self::KvReferenceUnresolved => {
                "the back end's API_KEYS still holds its @Microsoft.KeyVault(...) reference: the vault was not reachable"
            }
        }
    }

    /// The mode the break belongs to; `None` for breaks that apply to either.
    pub fn mode(self) -> Option<Mode> {
        match self {
            Self::FrontendNotIntegrated | Self::NoAccessRestriction | Self::WrongSubnet => {
                Some(Mode::ServiceEndpoint)
            }
            Self::PeDnsNotLinked | Self::PePublicAccess => Some(Mode::PrivateEndpoint),
            Self::DnsDown
            | Self::EgressBlocked
            | Self::BackendDown
            | Self::BadCredential
            | Self::CustomErrorPages
            | Self::GatewayInFront
            | Self::DbDnsNotLinked
            | Self::DbPublicAccess
            | Self::DbByAddress
            | Self::DbEgressBlocked
            | Self::KvReferenceUnresolved => None,
            // The whole site runs in service-endpoint mode (`crate::front`).
            Self::FdNoFdidCheck
            | Self::FdDirectOpen
            | Self::ScmOpen
            | Self::ScmBlocksDeploy
            | Self::SlotOpen => Some(Mode::ServiceEndpoint),
        }
    }

    /// The `--front` the break needs; `None` for breaks of the lockdown behind the front end.
    pub fn front(self) -> Option<&'static [Front]> {
        match self {
            Self::FdNoFdidCheck | Self::FdDirectOpen => Some(&[Front::FrontDoor]),
            Self::ScmOpen | Self::ScmBlocksDeploy | Self::SlotOpen => {
                Some(&[Front::FrontDoor, Front::AppGateway])
            }
            _ => None,
        }
    }

    /// Whether the break is in the data tier: it needs the lab on PostgreSQL.
    pub fn needs_database(self) -> bool {
        matches!(
            self,
            Self::DbDnsNotLinked | Self::DbPublicAccess | Self::DbByAddress | Self::DbEgressBlocked
        )
    }
}

impl fmt::Display for Break {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything the lab must build, with the breaks applied.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The lockdown mode.
    pub mode: Mode,
    /// The back end's inbound networking.
    pub backend_networking: SiteNetworking,
    /// Whether the front end's instances leave through the integration subnet.
    pub frontend_integrated: bool,
    /// The VNet's DNS view; `None` when the DNS server is down.
    pub vnet_dns: Option<ZoneView>,
    /// What the internet's DNS answers.
    pub public_dns: ZoneView,
    /// Connections to the back end's addresses time out.
    pub egress_blocked: bool,
    /// The back end's instances run.
    pub backend_running: bool,
    /// The front end sends the right key (entra: asks a token for the right resource).
    pub frontend_key_ok: bool,
    /// The integration subnet has the `Microsoft.Web` service endpoint: its calls reach the
    /// back end's public address in their IPv6 form.
    pub service_endpoint: bool,
    /// The back end's plan serves custom 403 and 503 pages.
    pub custom_error_pages: bool,
    /// An Application Gateway answers for the back end.
    pub gateway_in_front: bool,
    /// The data tier (with the lab on PostgreSQL).
    pub database: DatabasePlan,
    /// The whole site: what stands in front of the front end, the SCM site, the staging slot
    /// (`--front`; see [`Plan::with_front`]).
    pub site: SitePlan,
    /// The back end's `API_KEYS` holds its unresolved Key Vault reference.
    pub keyvault_unresolved: bool,
}

/// The back end's database behind its private endpoint, with the data tier's breaks applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatabasePlan {
    /// The `privatelink.postgres.database.azure.com` zone is linked to the back end's VNet.
    pub privatelink_linked: bool,
    /// The server's public endpoint accepts the internet.
    pub public_access: bool,
    /// `DATABASE_URL` names the private address instead of the server's name.
    pub by_address: bool,
    /// Connections from the back end to the private endpoint time out.
    pub egress_blocked: bool,
}

impl DatabasePlan {
    /// The correct data tier.
    pub const LOCKED: Self = Self {
        privatelink_linked: true,
        public_access: false,
        by_address: false,
        egress_blocked: false,
    };
}

/// A break that does not belong to the chosen mode.
#[derive(Debug, thiserror::Error)]
#[error(
    "--break {name} applies to --mode {needs}, not {mode} (try: --mode {needs} --break {name})"
)]
pub struct WrongMode {
    name: &'static str,
    needs: Mode,
    mode: Mode,
}

impl Plan {
    /// The correct lockdown for `mode`, then each break applied in turn.
    pub fn new(mode: Mode, breaks: &[Break]) -> Result<Self, WrongMode> {
        let private_endpoint = mode == Mode::PrivateEndpoint;
        let mut plan = Self {
            mode,
            backend_networking: match mode {
                Mode::ServiceEndpoint => restricted_to(INTEGRATION_SUBNET),
                Mode::PrivateEndpoint => SiteNetworking {
                    public_network_access: false,
                    ..SiteNetworking::open()
                },
            },
            frontend_integrated: true,
            vnet_dns: Some(ZoneView {
                private_endpoint,
                privatelink_linked: private_endpoint,
            }),
            public_dns: ZoneView {
                private_endpoint,
                privatelink_linked: false,
            },
            egress_blocked: false,
            backend_running: true,
            frontend_key_ok: true,
            service_endpoint: mode == Mode::ServiceEndpoint,
            custom_error_pages: false,
            gateway_in_front: false,
            database: DatabasePlan::LOCKED,
            keyvault_unresolved: false,
            site: SitePlan::default(),
        };
        for &b in breaks {
            if let Some(needs) = b.mode()
                && needs != mode
            {
                return Err(WrongMode {
                    name: b.name(),
                    needs,
                    mode,
                });
            }
            match b {
                Break::FrontendNotIntegrated => plan.frontend_integrated = false,
                Break::NoAccessRestriction => plan.backend_networking = SiteNetworking::open(),
                Break::WrongSubnet => plan.backend_networking = restricted_to(OTHER_SUBNET),
                Break::PeDnsNotLinked => {
                    plan.vnet_dns = Some(ZoneView {
                        private_endpoint: true,
                        privatelink_linked: false,
                    });
                }
                Break::PePublicAccess => plan.backend_networking.public_network_access = true,
                Break::DnsDown => plan.vnet_dns = None,
                Break::EgressBlocked => plan.egress_blocked = true,
                Break::BackendDown => plan.backend_running = false,
                Break::BadCredential => plan.frontend_key_ok = false,
                Break::CustomErrorPages => plan.custom_error_pages = true,
                Break::GatewayInFront => plan.gateway_in_front = true,
                Break::DbDnsNotLinked => plan.database.privatelink_linked = false,
                Break::DbPublicAccess => plan.database.public_access = true,
                // The back end refuses such a URL at start-up (the lab runs that check): App
                // Service then has no instance to send requests to.
                Break::DbByAddress => plan.database.by_address = true,
                Break::DbEgressBlocked => plan.database.egress_blocked = true,
                Break::KvReferenceUnresolved => plan.keyvault_unresolved = true,
                Break::FdNoFdidCheck
                | Break::FdDirectOpen
                | Break::ScmOpen
                | Break::ScmBlocksDeploy
                | Break::SlotOpen => plan.site.breaks.push(b),
            }
        }
        Ok(plan)
    }

    /// The whole site behind `front`, with the site's breaks applied. Refuses a break that needs
    /// another front.
    pub fn with_front(mut self, front: Front) -> Result<Self, WrongFront> {
        self.site = SitePlan::new(front, self.mode, std::mem::take(&mut self.site.breaks))?;
        Ok(self)
    }
}

/// The access restriction of a site locked to one subnet's service endpoint.
pub(crate) fn restricted_to(subnet: &str) -> SiteNetworking {
    SiteNetworking {
        public_network_access: true,
        rules: vec![AccessRule {
            vnet_subnet: Some(net(subnet)),
            ..AccessRule::new("allow-integration-subnet", 100, RuleAction::Allow)
        }],
        default_action: RuleAction::Deny,
        stopped: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaks_refuse_the_other_mode() {
        let error = Plan::new(Mode::ServiceEndpoint, &[Break::PeDnsNotLinked]).unwrap_err();
        assert!(error.to_string().contains("--mode private-endpoint"));
        assert!(Plan::new(Mode::PrivateEndpoint, &[Break::DnsDown]).is_ok());
    }

    #[test]
    fn names_match_clap() {
        use clap::ValueEnum;
        for b in Break::ALL {
            assert_eq!(b.to_possible_value().unwrap().get_name(), b.name());
        }
    }

    #[test]
    fn the_correct_lockdowns() {
        let se = Plan::new(Mode::ServiceEndpoint, &[]).unwrap();
        assert_eq!(se.backend_networking.default_action, RuleAction::Deny);
        assert!(se.backend_networking.public_network_access);
        let pe = Plan::new(Mode::PrivateEndpoint, &[]).unwrap();
        assert!(!pe.backend_networking.public_network_access);
        assert!(
            pe.backend_networking.rules.is_empty(),
            "modes never overlap"
        );
        assert!(pe.vnet_dns.unwrap().privatelink_linked);
        assert!(!pe.public_dns.privatelink_linked);
        assert!(se.service_endpoint && !pe.service_endpoint);
        for plan in [&se, &pe] {
            assert!(!plan.custom_error_pages && !plan.gateway_in_front);
        }
    }
}
