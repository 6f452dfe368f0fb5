//! FerroLB's controller library: the pure allocator, used by the `ferrolb-controller`
//! binary.

pub mod allocator;
pub mod engine;
pub mod leader;
pub mod metrics;
pub mod run;
pub mod writer;
