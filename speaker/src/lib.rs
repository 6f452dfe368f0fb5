//! FerroLB's speaker library: the Layer 2 planner (pure), used by the `ferrolb-speaker`
//! binary.

pub mod packet;
pub mod planner;
