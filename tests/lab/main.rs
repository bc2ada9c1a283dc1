//! End-to-end tests of the lab: the whole stack on loopback, the smoke suite run against it.

mod breaks;
mod cli;
mod configs;
mod database;
mod entra;
mod helpers;
mod platform;
mod reports;
mod scale;
mod site;
mod suite;
mod unique_hostnames;
