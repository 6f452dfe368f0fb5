//! BGPAdvertisement: announce pools' addresses to BGP peers.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{cel, schema};

/// Default IPv4 aggregation length: one /32 route per address.
pub const DEFAULT_AGGREGATION_LENGTH: i32 = 32;
/// Default IPv6 aggregation length: one /128 route per address.
pub const DEFAULT_AGGREGATION_LENGTH_V6: i32 = 128;

/// How, where and to whom pools' addresses are announced over BGP.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    plural = "bgpadvertisements",
    namespaced,
    shortname = "bgpadv",
    category = "ferrolb",
    derive = "PartialEq",
    doc = "Announces addresses of selected pools to BGP peers.",
    printcolumn(name = "IPAddressPools", type_ = "string", json_path = ".spec.ipAddressPools"),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Node Selectors",
        type_ = "string",
        json_path = ".spec.nodeSelectors",
        priority = 10
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(validation = kube::core::Rule::new(
    "!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || \
     (self.aggregationLength == 32 && self.aggregationLengthV6 == 128)"
).message("serviceSelectors can only be used with aggregationLength 32 and aggregationLengthV6 128").field_path(".serviceSelectors"))]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// IPv4 prefix length announced: addresses are rolled up into prefixes of this length.
    #[serde(default = "default_aggregation_length")]
    #[schemars(range(min = 1, max = 32))]
    pub aggregation_length: i32,
    /// IPv6 prefix length announced.
    #[serde(default = "default_aggregation_length_v6", rename = "aggregationLengthV6")]
    #[schemars(range(min = 1, max = 128))]
    pub aggregation_length_v6: i32,
    /// LOCAL_PREF attribute sent to iBGP peers; 0 leaves it unset.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub local_pref: u32,
    /// Communities attached: `A:B`, `large:A:B:C`, or the name of a Community alias.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "community_list_schema")]
    pub communities: Vec<String>,
    /// Pools announced by name. With no pools and no pool selectors, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::string_set_schema")]
    pub ip_address_pools: Vec<String>,
    /// Pools announced by label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Nodes that announce (become next hops); all nodes when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// BGPPeer names to announce to; all peers when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "schema::string_set_schema")]
    pub peers: Vec<String>,
    /// Services announced by label (any one must match); all Services when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

impl Default for BGPAdvertisementSpec {
    fn default() -> Self {
        Self {
            aggregation_length: DEFAULT_AGGREGATION_LENGTH,
            aggregation_length_v6: DEFAULT_AGGREGATION_LENGTH_V6,
            local_pref: 0,
            communities: Vec::new(),
            ip_address_pools: Vec::new(),
            ip_address_pool_selectors: Vec::new(),
            node_selectors: Vec::new(),
            peers: Vec::new(),
            service_selectors: Vec::new(),
        }
    }
}

fn default_aggregation_length() -> i32 {
    DEFAULT_AGGREGATION_LENGTH
}

fn default_aggregation_length_v6() -> i32 {
    DEFAULT_AGGREGATION_LENGTH_V6
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn community_list_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "array",
        "maxItems": schema::MAX_LIST_ITEMS,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": cel::community_reference("self"),
                "message": "must be A:B with 16-bit numbers, large:A:B:C with 32-bit numbers, or a Community alias name"
            }]
        }
    })
}
