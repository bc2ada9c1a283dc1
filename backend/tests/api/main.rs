//! Back-end tests: in-process requests for routing and shapes, real sockets on loopback for
//! behaviour (caller addresses, restarts).

mod data_dir_lock;
mod diag;
mod durability;
mod entra;
mod helpers;
mod items;
mod openapi;
mod security;
mod service_endpoint;
mod stores;
