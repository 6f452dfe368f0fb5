//! Every configuration example of MetalLB's documentation, with only its apiVersion
//! changed (files under tests/metallb-examples), is accepted by the model and by the
//! CRDs' CEL rules.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use ferrolb_crds::config::{self, Severity};
use serde_json::Value;

fn kind_and_name(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// A page shows alternatives under one name, and examples not meant to be applied
/// together; each object is therefore checked with only what it refers to (the first
/// object of each kind and name on the page).
fn with_context(target: &Value, docs: &[Value]) -> String {
    let spec = &target["spec"];
    let names = |field: &str| -> BTreeSet<String> {
        spec[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let pools = names("ipAddressPools");
    let peers = names("peers");
    let selects_all_pools = pools.is_empty() && spec["ipAddressPoolSelectors"].is_null();
    let wanted = |doc: &Value| {
        let (kind, name) = kind_and_name(doc);
        match kind.as_str() {
            "IPAddressPool" => {
                selects_all_pools || pools.contains(&name) || !spec["ipAddressPoolSelectors"].is_null()
            }
            "BGPPeer" => peers.contains(&name),
            "BFDProfile" => spec["bfdProfile"].as_str() == Some(name.as_str()),
            "Secret" => spec["passwordSecret"]["name"].as_str() == Some(name.as_str()),
            "Community" => true,
            _ => false,
        }
    };
    let mut seen = BTreeSet::from([kind_and_name(target)]);
    let mut yaml = serde_saphyr::to_string(target).unwrap() + "---\n";
    for doc in docs.iter().filter(|d| wanted(d)) {
        if seen.insert(kind_and_name(doc)) {
            yaml += &(serde_saphyr::to_string(doc).unwrap() + "---\n");
        }
    }
    yaml
}

#[test]
fn metallb_documentation_examples_are_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metallb-examples");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let docs: Vec<Value> = docs.into_iter().filter(|v| !v.is_null()).collect();
        for target in docs.iter().filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("ferrolb.io/"))
        }) {
            let (kind, name) = kind_and_name(target);
            let yaml = with_context(target, &docs);
            let objects =
                config::parse_manifests(&yaml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = config::build("metallb-system", &objects);
            for issue in outcome
                .issues_of(&kind, &name)
                .filter(|i| i.severity == Severity::Invalid)
            {
                failures.push(format!("{}: {issue}", path.display()));
            }
            let json = support::object_json(&objects, &kind, &name);
            if let Err(why) = support::cel_check(&kind, &json) {
                failures.push(format!("{}: CEL rejects {kind} {name}: {why}", path.display()));
            }
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} example objects found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
