//! FerroLB's speaker library: the Layer 2 planner, wire formats and announcer (all pure),
//! used by the `ferrolb-speaker` binary.

pub mod announcer;
pub mod packet;
pub mod planner;
