//! The node itself: its links and addresses (netlink), the VIPs on `lo` and the nftables
//! steering of VIP traffic to NodePorts, and TCP MD5 on the BGP sessions' sockets.

pub mod links;
pub mod netlink;
pub mod nftables;
pub mod steering;
pub mod tcp_md5;
