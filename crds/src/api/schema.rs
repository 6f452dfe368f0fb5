//! Schema pieces shared by several CRDs.

/// Upper bound on list lengths in our CRDs; the API server needs one to bound
/// the cost of CEL rules that run per item.
pub const MAX_LIST_ITEMS: u32 = 1024;

/// Serde default for booleans that default to true.
pub fn default_true() -> bool {
    true
}

/// A list of distinct strings (`x-kubernetes-list-type: set`): the API server itself
/// rejects duplicates.
pub fn string_set_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    schemars::json_schema!({
        "type": "array",
        "maxItems": MAX_LIST_ITEMS,
        "items": { "type": "string", "maxLength": 253 },
        "x-kubernetes-list-type": "set"
    })
}
