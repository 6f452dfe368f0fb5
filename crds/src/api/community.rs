//! Community: named aliases for BGP community values.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{cel, schema};

/// Named BGP community values that BGPAdvertisements may refer to by name.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    plural = "communities",
    namespaced,
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "Named aliases for BGP community values.",
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// The aliases; names are unique within the object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "alias_list_schema")]
    pub communities: Vec<CommunityAlias>,
}

/// One alias: a name standing for a community value.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct CommunityAlias {
    /// The alias used in BGPAdvertisement `communities`.
    pub name: String,
    /// `A:B` with 16-bit numbers or `large:A:B:C` with 32-bit numbers.
    pub value: String,
}

fn alias_list_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "array",
        "maxItems": schema::MAX_LIST_ITEMS,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["name"],
        "items": {
            "type": "object",
            "required": ["name", "value"],
            "properties": {
                "name": {
                    "type": "string", "minLength": 1, "maxLength": 63,
                    "description": "The alias used in BGPAdvertisement `communities`."
                },
                "value": {
                    "type": "string", "maxLength": 64,
                    "description": "`A:B` with 16-bit numbers or `large:A:B:C` with 32-bit numbers.",
                    "x-kubernetes-validations": [{
                        "rule": cel::community_literal("self"),
                        "message": "must be A:B with 16-bit numbers or large:A:B:C with 32-bit numbers"
                    }]
                }
            }
        }
    })
}
