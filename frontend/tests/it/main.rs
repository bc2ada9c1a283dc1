//! Front-end tests on loopback: the real back end behind the BFF for the happy path and its
//! gates, and fake back ends for every failure the front end must diagnose.

mod contract;
mod database;
mod entra;
mod envelope;
mod failfast;
mod failures;
mod front_door;
mod helpers;
mod page;
mod relay;
mod shutdown;
