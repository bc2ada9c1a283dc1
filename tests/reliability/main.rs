//! Reliability under load, faults and bad input, the fast part (issue 18): each case is bounded
//! and loopback-only. `bench/reliability` runs the slow scenarios against release binaries.

mod exhaustion;
mod logs;
mod server;
