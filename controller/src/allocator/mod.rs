//! Address allocation, as plain functions over plain data (no Kubernetes client).

mod free;

pub use free::FreeSet;
