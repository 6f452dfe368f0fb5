//! The speaker's side of the Kubernetes API: watches into in-memory stores, the view the
//! engine reads from them, and the writers of ServiceL2Status objects and Events.

pub mod failures;
pub mod status;
pub mod stores;
pub mod watch;
