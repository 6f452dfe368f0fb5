//! BGP mode: sessions to routers, each announcing the routes the BGP plan gives this
//! node (`crate::planner::bgp`). The protocol itself (state machine, wire format,
//! UPDATEs) is the `ferrolb-bgp` crate; this module carries it out over TCP.

pub mod peer;
