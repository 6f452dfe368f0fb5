//! BGPSessionState: one BGP session, from one node to one BGPPeer, as its speaker sees it.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Empty spec; the node's speaker writes the session's state into status when it
/// changes (never per keepalive).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPSessionState",
    plural = "bgpsessionstates",
    namespaced,
    status = "BGPSessionStateStatus",
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "The state of the BGP session from one node to one BGPPeer, written by that node's speaker when it changes.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Peer", type_ = "string", json_path = ".status.peer"),
    printcolumn(name = "Address", type_ = "string", json_path = ".status.peerAddress"),
    printcolumn(name = "BGP", type_ = "string", json_path = ".status.bgpStatus"),
    printcolumn(name = "BFD", type_ = "string", json_path = ".status.bfdStatus"),
    printcolumn(name = "Since", type_ = "date", json_path = ".status.since"),
    printcolumn(name = "IPv4", type_ = "integer", json_path = ".status.advertisedIPv4"),
    printcolumn(name = "IPv6", type_ = "integer", json_path = ".status.advertisedIPv6"),
    printcolumn(
        name = "Last Error",
        type_ = "string",
        json_path = ".status.lastError",
        priority = 1
    ),
    printcolumn(
        name = "Problems",
        type_ = "string",
        json_path = ".status.problems",
        priority = 1
    )
)]
pub struct BGPSessionStateSpec {}

/// One session's state.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionStateStatus {
    /// The node whose speaker runs the session.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("node is immutable"))]
    pub node: String,
    /// The BGPPeer's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("peer is immutable"))]
    pub peer: String,
    /// The peer's address and port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub peer_address: String,
    /// The RFC 4271 state (Idle, Connect, Active, OpenSent, OpenConfirm, Established),
    /// or NotRunning for a peer this node cannot run (see `problems`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bgp_status: String,
    /// The state of the BFD session beside it (AdminDown, Down, Init, Up), when the
    /// BGPPeer has a `bfdProfile`.
    // Always written, null included (see `since`).
    #[serde(default)]
    pub bfd_status: Option<String>,
    /// When the session entered `bgpStatus`, by the node's clock (RFC 3339).
    // Always written, null included: the speaker writes with a merge patch, where a
    // missing field would keep its old value.
    #[serde(default)]
    pub since: Option<String>,
    /// Why the session last went down or a try failed (a NOTIFICATION with its code, a
    /// refused connection, an expired hold timer).
    #[serde(default)]
    pub last_error: Option<String>,
    /// IPv4 prefixes the peer has from this node.
    #[serde(default, rename = "advertisedIPv4")]
    pub advertised_ipv4: u32,
    /// IPv6 prefixes the peer has from this node.
    #[serde(default, rename = "advertisedIPv6")]
    pub advertised_ipv6: u32,
    /// What this node cannot do for the peer: unsupported fields, prefixes not sent and
    /// why.
    #[serde(default)]
    pub problems: Vec<String>,
}
