//! IPAddressPool: the addresses FerroLB may hand to Services.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cel;
use super::schema;

/// A set of addresses the controller assigns to LoadBalancer Services.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    namespaced,
    status = "IPAddressPoolStatus",
    shortname = "ipp",
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "A pool of IP addresses FerroLB assigns to Services of type LoadBalancer.",
    printcolumn(name = "Auto Assign", type_ = "boolean", json_path = ".spec.autoAssign"),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(name = "Assigned IPv4", type_ = "integer", json_path = ".status.assignedIPv4"),
    printcolumn(
        name = "Available IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(name = "Assigned IPv6", type_ = "integer", json_path = ".status.assignedIPv6"),
    printcolumn(
        name = "Available IPv6",
        type_ = "integer",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Address ranges of the pool: CIDRs (`10.0.0.0/24`, `fd00::/120`) or
    /// `first-last` ranges (`10.0.0.10-10.0.0.20`). IPv4 and IPv6 may be mixed.
    #[schemars(schema_with = "address_list_schema")]
    pub addresses: Vec<String>,
    /// Whether automatic allocation may use this pool. When false, only Services that
    /// request the pool or one of its addresses get addresses from it.
    #[serde(default = "schema::default_true")]
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 and .255, which some old clients mishandle.
    #[serde(default)]
    #[serde(rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Restricts which Services may get addresses from this pool, and in what order
    /// pools are tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

/// Which Services a pool serves, and its priority among pools.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; 0 (unset) is tried after every prioritised pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::string_set_schema")]
    pub namespaces: Vec<String>,
    /// Label selectors on Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Label selectors on Services that may use the pool (any one must match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Pool usage written by the controller.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses of the pool currently assigned (a shared address counts once).
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: i64,
    /// IPv6 addresses of the pool currently assigned.
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: i64,
    /// IPv4 addresses still free.
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: i64,
    /// IPv6 addresses still free (saturates at 2^63-1).
    #[serde(default, rename = "availableIPv6")]
    pub available_ipv6: i64,
    /// `Valid` (and, when false, why the pool is ignored) and `Overlapping`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

fn address_list_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": schema::MAX_LIST_ITEMS,
        "items": {
            "type": "string",
            "maxLength": 100,
            "x-kubernetes-validations": [
                { "rule": cel::address_syntax(), "message": cel::ADDRESS_SYNTAX_MESSAGE },
                { "rule": cel::address_range_family(),
                  "message": "a range's first and last address must be of the same family" },
                { "rule": cel::address_range_order(),
                  "message": "a range's first address must not be after its last" },
            ]
        }
    })
}
