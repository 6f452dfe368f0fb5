//! ServiceL2Status and ServiceBGPStatus: where each Service is announced, written by speakers.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Empty spec of a Layer 2 announcement record; all of it lives in status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    namespaced,
    status = "ServiceL2StatusStatus",
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "Which node announces a Service in Layer 2 mode, and on which interfaces.",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Service Name", type_ = "string", json_path = ".status.serviceName"),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceL2StatusSpec {}

/// The node announcing a Service in Layer 2 mode.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// Which Service, announced from which node.
    #[serde(flatten)]
    pub announcement: Announcement,
    /// Interfaces the node answers ARP/NDP on for this Service.
    // Always written: the speaker writes with a merge patch, where a missing list would
    // keep its old items.
    #[serde(default)]
    pub interfaces: Vec<InterfaceInfo>,
}

/// The identity of an announcement record; it never changes once written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    /// The announcing node.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("node is immutable"))]
    pub node: String,
    /// The announced Service's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("serviceName is immutable"))]
    pub service_name: String,
    /// The announced Service's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("serviceNamespace is immutable"))]
    pub service_namespace: String,
}

/// A network interface name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct InterfaceInfo {
    /// Interface name, as on the node.
    pub name: String,
}

/// Empty spec of a BGP announcement record; all of it lives in status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    namespaced,
    status = "ServiceBGPStatusStatus",
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "To which BGP peers a node announces a Service.",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Service Name", type_ = "string", json_path = ".status.serviceName"),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    )
)]
pub struct ServiceBGPStatusSpec {}

/// The peers a node announces a Service to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// Which Service, announced from which node.
    #[serde(flatten)]
    pub announcement: Announcement,
    /// BGPPeer names the Service is configured to be announced to from this node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}
