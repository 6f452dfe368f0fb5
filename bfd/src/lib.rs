//! FerroLB's BFD core (RFC 5880 asynchronous mode, for RFC 5881 single-hop and RFC 5883
//! multihop sessions), free of I/O: control packets and the session state machine. The
//! speaker's shell owns the UDP sockets, feeds each [`session::Session`] the packets
//! and the time, and tells the BGP session when BFD says its peer is gone.
//!
//! ```text
//!   UDP 3784/4784 ─► Packet::decode ─► Session::handle(Input, now) ─► Send ─► UDP
//!   shell's timer ─── Tick ──────────►        │                   └─► Changed ─► BGP
//!                                             └─ deadline() ─► shell's timer
//! ```

pub mod packet;
pub mod session;
