//! BGPPeer: a BGP session the speakers open to a router.

use k8s_openapi::api::core::v1::SecretReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Default TCP port of a BGP peer.
pub const DEFAULT_PEER_PORT: u16 = 179;

/// A BGP peer (router) that selected nodes open a session to.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    plural = "bgppeers",
    namespaced,
    shortname = "bgpp",
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "A BGP peer that FerroLB speakers on the selected nodes open a session to.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(name = "ASN", type_ = "string", json_path = ".spec.peerASN"),
    printcolumn(name = "BFD Profile", type_ = "string", json_path = ".spec.bfdProfile"),
    printcolumn(name = "Multi Hops", type_ = "string", json_path = ".spec.ebgpMultiHop"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new(
    "(has(self.peerASN) && self.peerASN != 0) != has(self.dynamicASN)"
).message("exactly one of peerASN and dynamicASN must be set"))]
#[x_kube(validation = kube::core::Rule::new(
    "has(self.peerAddress) != has(self.interface)"
).message("exactly one of peerAddress and interface must be set"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.password) || !has(self.passwordSecret) || !has(self.passwordSecret.name) || self.passwordSecret.name == ''"
).message("password and passwordSecret are mutually exclusive"))]
#[x_kube(validation = kube::core::Rule::new(
    "!self.ebgpMultiHop || !has(self.peerASN) || self.peerASN != self.myASN"
).message("ebgpMultiHop cannot be set for an iBGP peer (peerASN equal to myASN)").field_path(".ebgpMultiHop"))]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.holdTime) || !has(self.keepaliveTime) || \
     (duration(self.holdTime) == duration('0s') ? duration(self.keepaliveTime) == duration('0s') \
      : duration(self.keepaliveTime) < duration(self.holdTime))"
).message("keepaliveTime must be shorter than holdTime (both 0 disables keepalives)").field_path(".keepaliveTime"))]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// The AS number the speaker uses towards this peer.
    #[serde(rename = "myASN")]
    #[schemars(schema_with = "asn_schema")]
    pub my_asn: u32,
    /// The peer's AS number; exactly one of peerASN and dynamicASN.
    #[serde(default, rename = "peerASN", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_asn_schema")]
    pub peer_asn: Option<u32>,
    /// Accept whatever AS the peer announces, as long as it is internal or external.
    #[serde(default, rename = "dynamicASN", skip_serializing_if = "Option::is_none")]
    pub dynamic_asn: Option<DynamicAsn>,
    /// AS number presented to the peer instead of myASN (local-as).
    #[serde(default, rename = "localASN", skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_asn_schema")]
    pub local_asn: Option<u32>,
    /// The peer's IP address; exactly one of peerAddress and interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("isIP(self)").message("must be an IP address"))]
    #[schemars(length(max = 64))]
    pub peer_address: Option<String>,
    /// Interface for an unnumbered session (the peer is found by IPv6 link-local address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub interface: Option<String>,
    /// Local address the session is opened from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("isIP(self)").message("must be an IP address"))]
    #[schemars(length(max = 64))]
    pub source_address: Option<String>,
    /// The peer's TCP port.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1, max = 16384))]
    pub peer_port: u16,
    /// BGP hold time (Go duration, e.g. `90s`): 0 or at least 3s. Default 90s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(
        "duration(self) == duration('0s') || duration(self) >= duration('3s')"
    ).message("must be 0 or at least 3s"))]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"), length(max = 32))]
    pub hold_time: Option<String>,
    /// Keepalive interval (Go duration). Default: a third of the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"), length(max = 32))]
    pub keepalive_time: Option<String>,
    /// Time between connection attempts: whole seconds from 1s to 65535s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new(
        "duration(self) >= duration('1s') && duration(self) <= duration('65535s')"
    ).message("must be between 1s and 65535s"))]
    #[schemars(
        regex(pattern = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 32)
    )]
    pub connect_time: Option<String>,
    /// BGP identifier (an IPv4 address). Default: the session's local IPv4 address.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = kube::core::Rule::new("isIP(self) && ip(self).family() == 4")
        .message("must be an IPv4 address"))]
    #[schemars(length(max = 64))]
    pub router_id: Option<String>,
    /// Nodes that open this session; all nodes when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// TCP MD5 password, inline; see passwordSecret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 80))]
    pub password: Option<String>,
    /// A `kubernetes.io/basic-auth` Secret in the FerroLB namespace whose `password`
    /// key holds the TCP MD5 password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    /// Name of the BFDProfile for this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub bfd_profile: Option<String>,
    /// Negotiate BGP graceful restart. Cannot be changed after creation.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("enableGracefulRestart cannot be changed"))]
    pub enable_graceful_restart: bool,
    /// Allow an eBGP peer that is more than one hop away.
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// Linux VRF the session lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 15))]
    pub vrf: Option<String>,
    /// Deprecated and without effect, accepted for compatibility.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
    /// Carry both address families on this one session.
    #[serde(default)]
    pub dual_stack_address_family: bool,
}

/// Which AS numbers a dynamic-ASN peer may present.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    /// The peer's AS equals myASN (iBGP).
    Internal,
    /// The peer's AS differs from myASN (eBGP).
    External,
}

fn default_peer_port() -> u16 {
    DEFAULT_PEER_PORT
}

fn asn_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "integer", "format": "int64", "minimum": 1, "maximum": 4294967295u64
    })
}

fn optional_asn_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295u64
    })
}
