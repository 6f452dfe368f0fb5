//! The CRDs under charts/ferrolb/crds are exactly what the Rust types generate.

use std::path::Path;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/ferrolb/crds");
    let files = ferrolb_crds::api::crd_files().unwrap();
    let mut stale = Vec::new();
    for (name, body) in &files {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if on_disk == *body => {}
            _ => stale.push(name.clone()),
        }
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut expected: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    expected.sort();
    assert_eq!(
        on_disk, expected,
        "charts/ferrolb/crds holds files the types do not generate"
    );
    assert!(
        stale.is_empty(),
        "CRDs out of date: {stale:?}; run `cargo run -p ferrolb-crds --bin crdgen`"
    );
}

#[test]
fn crds_carry_printer_columns_and_cel_rules() {
    for crd in ferrolb_crds::api::crds() {
        let kind = &crd.spec.names.kind;
        assert_eq!(crd.spec.group, "ferrolb.io");
        assert_eq!(crd.spec.scope, "Namespaced", "{kind}");
        let version = &crd.spec.versions[0];
        assert!(
            version
                .additional_printer_columns
                .as_ref()
                .is_some_and(|c| !c.is_empty()),
            "{kind} has no printer columns"
        );
        let schema = serde_json::to_string(&version.schema).unwrap();
        let wants_cel = [
            "IPAddressPool",
            "BGPAdvertisement",
            "BGPPeer",
            "Community",
            "ServiceL2Status",
            "ServiceBGPStatus",
            "BGPSessionState",
        ];
        if wants_cel.contains(&kind.as_str()) {
            assert!(
                schema.contains("x-kubernetes-validations"),
                "{kind} has no CEL rules"
            );
        }
    }
}

#[test]
fn pool_columns_show_usage() {
    let crd = ferrolb_crds::api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == "IPAddressPool")
        .unwrap();
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for wanted in [
        "Auto Assign",
        "Addresses",
        "Assigned IPv4",
        "Available IPv4",
        "Assigned IPv6",
        "Available IPv6",
    ] {
        assert!(
            columns.iter().any(|c| c == wanted),
            "missing column {wanted}: {columns:?}"
        );
    }
}
