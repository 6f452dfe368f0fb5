//! CEL transition rules: fields that must not change after creation.

mod support;

use serde_json::json;
use support::{cel_check_update, parse, peer};

#[test]
fn graceful_restart_cannot_be_toggled() {
    let objects = parse(&peer(
        "r",
        "{myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, enableGracefulRestart: true}",
    ));
    let old = support::object_json(&objects, "BGPPeer", "r");
    let mut new = old.clone();
    new["spec"]["holdTime"] = json!("30s");
    assert!(
        cel_check_update("BGPPeer", &new, &old).is_ok(),
        "other fields may change"
    );
    new["spec"]["enableGracefulRestart"] = json!(false);
    let err = cel_check_update("BGPPeer", &new, &old).unwrap_err();
    assert!(err.contains("enableGracefulRestart cannot be changed"), "{err}");
}

#[test]
fn announcement_records_keep_their_identity() {
    for kind in ["ServiceL2Status", "ServiceBGPStatus"] {
        let old = json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": kind,
            "metadata": {"name": "l2-abc", "namespace": support::NS},
            "spec": {},
            "status": {"node": "n1", "serviceName": "web", "serviceNamespace": "default"}
        });
        let mut new = old.clone();
        assert!(cel_check_update(kind, &new, &old).is_ok());
        new["status"]["node"] = json!("n2");
        let err = cel_check_update(kind, &new, &old).unwrap_err();
        assert!(err.contains("node is immutable"), "{kind}: {err}");
    }
}

#[test]
fn session_states_keep_their_node_and_peer() {
    let old = json!({
        "apiVersion": "ferrolb.io/v1beta1", "kind": "BGPSessionState",
        "metadata": {"name": "n1.router", "namespace": support::NS},
        "spec": {},
        "status": {"node": "n1", "peer": "router", "bgpStatus": "Active"}
    });
    let mut new = old.clone();
    new["status"]["bgpStatus"] = json!("Established");
    assert!(
        cel_check_update("BGPSessionState", &new, &old).is_ok(),
        "the state may change"
    );
    new["status"]["peer"] = json!("other");
    let err = cel_check_update("BGPSessionState", &new, &old).unwrap_err();
    assert!(err.contains("peer is immutable"), "{err}");
}
