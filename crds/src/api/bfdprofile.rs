//! BFDProfile: Bidirectional Forwarding Detection timers for BGP sessions.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Default receive and transmit intervals, in milliseconds.
pub const DEFAULT_INTERVAL_MS: u32 = 300;
/// Default detection multiplier.
pub const DEFAULT_DETECT_MULTIPLIER: u32 = 3;
/// Default echo interval, in milliseconds.
pub const DEFAULT_ECHO_INTERVAL_MS: u32 = 50;

/// BFD settings that BGPPeers refer to by name.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    plural = "bfdprofiles",
    namespaced,
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "Bidirectional Forwarding Detection settings for BGP sessions.",
    printcolumn(name = "Passive Mode", type_ = "boolean", json_path = ".spec.passiveMode"),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(name = "Multiplier", type_ = "integer", json_path = ".spec.detectMultiplier")
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Shortest interval, in ms, at which this system can receive control packets. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<u32>,
    /// Shortest interval, in ms, at which this system sends control packets. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<u32>,
    /// Packets that may be lost before the session is declared down. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u32>,
    /// Interval, in ms, between echo packets. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub echo_interval: Option<u32>,
    /// Send echo packets (IPv4 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Wait for the peer to start the session instead of starting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Lowest TTL accepted on incoming control packets (multi-hop sessions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<u32>,
}
