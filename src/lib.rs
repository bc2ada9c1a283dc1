//! The lockdown lab: the whole stack on loopback with the App Service network emulated, so the
//! lockdown story — and every way to get it wrong — runs on any Linux machine without Azure.
//!
//! - [`topology`]: the address plan (integration subnet, private endpoint, public addresses);
//! - [`dns`]: the VNet's and the internet's DNS views (hickory-server);
//! - [`emulator`]: App Service's front ends (access restrictions, public access, the status
//!   lines and pages it refuses with, the headers it adds on each path, `ARRAffinity`);
//! - [`gateway`]: an Application Gateway that refuses everyone (`--break gateway-in-front`);
//! - [`proxy`]: a TCP forwarder (the database's public endpoint, `--break db-public-access`);
//! - [`front`]: the whole site (`--front`): Front Door or an Application Gateway in front of the
//!   front end, the back end's SCM site and staging slot, the deploy runner;
//! - [`breaks`]: the modes and the misconfiguration catalogue;
//! - [`stack`]: starting it all; [`suite`]: the smoke suite the lab runs against itself;
//! - [`describe`]: what the lab prints about itself (the break catalogue, the topology).

pub mod breaks;
pub mod describe;
pub mod dns;
pub mod emulator;
pub mod front;
pub mod gateway;
pub mod proxy;
pub mod stack;
pub mod suite;
pub mod topology;

pub use breaks::{Break, Mode, Plan};
pub use front::Front;
pub use stack::{Lab, LabAuth, LabDatabase, LabOptions};
pub use test_support::FullQueue;
