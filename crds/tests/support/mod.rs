//! Helpers shared by the crds integration tests: compact YAML builders and a CEL
//! check of an object against the CRD generated from our types.

#![allow(dead_code)]

use ferrolb_crds::api;
use ferrolb_crds::config::{self, Objects};

/// The FerroLB namespace used by the tests.
pub const NS: &str = "ferrolb-system";

/// One object as YAML; `spec` is a YAML flow mapping such as `{addresses: [10.0.0.0/24]}`.
pub fn object(version: &str, kind: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: ferrolb.io/{version}\nkind: {kind}\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {spec}\n---\n"
    )
}

pub fn pool(name: &str, spec: &str) -> String {
    object("v1beta1", "IPAddressPool", name, spec)
}

pub fn l2(name: &str, spec: &str) -> String {
    object("v1beta1", "L2Advertisement", name, spec)
}

pub fn bgpadv(name: &str, spec: &str) -> String {
    object("v1beta1", "BGPAdvertisement", name, spec)
}

pub fn peer(name: &str, spec: &str) -> String {
    object("v1beta2", "BGPPeer", name, spec)
}

pub fn community(name: &str, spec: &str) -> String {
    object("v1beta1", "Community", name, spec)
}

pub fn bfd(name: &str, spec: &str) -> String {
    object("v1beta1", "BFDProfile", name, spec)
}

/// A Secret of the given type holding `password` (base64 of "s3cret" is czNjcmV0).
pub fn secret(name: &str, type_: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {NS}}}\ntype: {type_}\ndata: {data}\n---\n"
    )
}

/// A Node with labels given as a YAML flow mapping.
pub fn node(name: &str, labels: &str) -> String {
    format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}, labels: {labels}}}\n---\n")
}

pub fn parse(yaml: &str) -> Objects {
    config::parse_manifests(yaml).unwrap_or_else(|e| panic!("test YAML does not parse: {e}\n{yaml}"))
}

/// The object named `name` of kind `kind` as JSON, as our types serialise it
/// (defaults filled in, as the API server would have done).
pub fn object_json(objects: &Objects, kind: &str, name: &str) -> serde_json::Value {
    fn find<T: serde::Serialize + kube::Resource>(list: &[T], name: &str) -> serde_json::Value {
        let obj = list
            .iter()
            .find(|o| o.meta().name.as_deref() == Some(name))
            .expect("object in the case");
        serde_json::to_value(obj).unwrap()
    }
    match kind {
        "IPAddressPool" => find(&objects.pools, name),
        "L2Advertisement" => find(&objects.l2_advertisements, name),
        "BGPAdvertisement" => find(&objects.bgp_advertisements, name),
        "BGPPeer" => find(&objects.bgp_peers, name),
        "Community" => find(&objects.communities, name),
        "BFDProfile" => find(&objects.bfd_profiles, name),
        other => panic!("no CRD for {other}"),
    }
}

/// Evaluates the CEL rules (`x-kubernetes-validations`) of `kind`'s generated CRD on `object`.
pub fn cel_check(kind: &str, object: &serde_json::Value) -> Result<(), String> {
    cel_validate(kind, object, None)
}

/// The same for an update from `old` (transition rules such as `self == oldSelf`).
pub fn cel_check_update(kind: &str, new: &serde_json::Value, old: &serde_json::Value) -> Result<(), String> {
    cel_validate(kind, new, Some(old))
}

fn cel_validate(
    kind: &str,
    object: &serde_json::Value,
    old: Option<&serde_json::Value>,
) -> Result<(), String> {
    let crd = api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("a CRD for the kind");
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema");
    let schema = serde_json::to_value(schema).unwrap();
    kube::core::cel::Validator::new()
        .validate(&schema, object, old)
        .map_err(|errors| {
            errors
                .as_slice()
                .iter()
                .map(|e| format!("{}: {}", e.field_path, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        })
}
