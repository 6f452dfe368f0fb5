//! FerroLB's speaker library: the Layer 2 planner, wire formats and announcer (all pure),
//! used by the `ferrolb-speaker` binary.

pub mod announcer;
pub mod dataplane;
pub mod failures;
pub mod interfaces;
pub mod l2;
pub mod membership;
pub mod metrics;
pub mod netlink;
pub mod packet;
pub mod planner;
pub mod run;
pub mod status;
pub mod watch;
