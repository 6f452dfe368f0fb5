//! FerroLB's BGP protocol core, free of I/O: no tokio, no sockets, no clock. The
//! speaker's shell feeds a [`session::Session`] what happened on its TCP connection and
//! the time, and carries out what the session returns; tests drive it with simulated
//! time.
//!
//! ```text
//!   shell (TCP connect/read/write, timers) ──Input, now──► Session ──Vec<Output>──► shell
//!                                                            │
//!                                                            └─ deadline() ─► shell's timer
//! ```

pub mod message;
pub mod session;
pub mod update;
pub mod wire;
