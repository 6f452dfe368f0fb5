//! FerroLB's speaker library, used by the `ferrolb-speaker` binary. Arranged by role:
//!
//! - shared by every announcement mode: [`engine`] (the pure decisions), [`planner`]
//!   (who announces what), [`api`] (watches, status and Event writers), [`host`] (the
//!   node's links, loopback addresses and nftables steering), [`metrics`], [`run`] (the
//!   shell that feeds the engine and carries out its actions);
//! - Layer 2 only: [`l2`] (ARP/NDP packets, the announcer, raw sockets, interface
//!   choice, the gossip membership).

pub mod api;
pub mod bgp;
pub mod engine;
pub mod host;
pub mod l2;
pub mod metrics;
pub mod planner;
pub mod run;
