//! FerroLB's API: the `ferrolb.io` custom resources, the Service annotations both
//! components read, and the pure configuration model that turns all of them into a
//! validated [`config::Config`].

pub mod annotations;
pub mod api;
pub mod config;
pub mod labels;
pub mod service;

/// The API group of every FerroLB custom resource.
pub const GROUP: &str = "ferrolb.io";
