//! Table of invalid configurations: each names the object, the field path and the
//! words of the message the model must report. Cases marked `cel` are single-object
//! rules the generated CRD must reject too, so a cluster rejects them at admission.

mod support;

use ferrolb_crds::config::{self, Severity};
use support::*;

struct Case {
    name: &'static str,
    yaml: String,
    kind: &'static str,
    object: &'static str,
    field: &'static str,
    message: &'static str,
    cel: bool,
}

fn case(
    name: &'static str,
    yaml: String,
    (kind, object): (&'static str, &'static str),
    field: &'static str,
    message: &'static str,
    cel: bool,
) -> Case {
    Case {
        name,
        yaml,
        kind,
        object,
        field,
        message,
        cel,
    }
}

const CEL: bool = true;
const MODEL: bool = false;

fn p(name: &'static str) -> (&'static str, &'static str) {
    ("IPAddressPool", name)
}
fn l(name: &'static str) -> (&'static str, &'static str) {
    ("L2Advertisement", name)
}
fn b(name: &'static str) -> (&'static str, &'static str) {
    ("BGPAdvertisement", name)
}
fn r(name: &'static str) -> (&'static str, &'static str) {
    ("BGPPeer", name)
}
fn c(name: &'static str) -> (&'static str, &'static str) {
    ("Community", name)
}
fn f(name: &'static str) -> (&'static str, &'static str) {
    ("BFDProfile", name)
}

const PEER: &str = "myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.1";

fn peer_with(extra: &str) -> String {
    peer("x", &format!("{{{PEER}, {extra}}}"))
}

fn sel(expr: &str) -> String {
    format!("[{{matchExpressions: [{expr}]}}]")
}

fn cases() -> Vec<Case> {
    let good_pool = pool("good", "{addresses: [10.0.0.0/24]}");
    vec![
        // IPAddressPool, on its own.
        case(
            "pool without addresses",
            pool("x", "{addresses: []}"),
            p("x"),
            "spec.addresses",
            "no addresses",
            MODEL,
        ),
        case(
            "bare address",
            pool("x", "{addresses: [10.0.0.1]}"),
            p("x"),
            "spec.addresses[0]",
            "neither a CIDR",
            CEL,
        ),
        case(
            "prefix too long",
            pool("x", "{addresses: [10.0.0.0/33]}"),
            p("x"),
            "spec.addresses[0]",
            "invalid CIDR",
            CEL,
        ),
        case(
            "v6 prefix too long",
            pool("x", "{addresses: [\"fd00::/129\"]}"),
            p("x"),
            "spec.addresses[0]",
            "invalid CIDR",
            CEL,
        ),
        case(
            "range end not an IP",
            pool("x", "{addresses: [10.0.0.x-10.0.0.9]}"),
            p("x"),
            "spec.addresses[0]",
            "\"10.0.0.x\" is not an IP address",
            CEL,
        ),
        case(
            "range of two families",
            pool("x", "{addresses: [\"10.0.0.1-fd00::1\"]}"),
            p("x"),
            "spec.addresses[0]",
            "different families",
            CEL,
        ),
        case(
            "reversed v4 range",
            pool("x", "{addresses: [10.0.0.9-10.0.0.1]}"),
            p("x"),
            "spec.addresses[0]",
            "first address is after the last",
            CEL,
        ),
        case(
            "reversed v6 range",
            pool("x", "{addresses: [\"fd00::9-fd00::1\"]}"),
            p("x"),
            "spec.addresses[0]",
            "first address is after the last",
            MODEL,
        ),
        case(
            "three-part range",
            pool("x", "{addresses: [10.0.0.1-10.0.0.5-10.0.0.9]}"),
            p("x"),
            "spec.addresses[0]",
            "is not an IP address",
            CEL,
        ),
        case(
            "pool overlaps itself",
            pool("x", "{addresses: [10.0.0.0/24, 10.0.0.128/25]}"),
            p("x"),
            "spec.addresses[1]",
            "overlaps \"10.0.0.0/24\" (spec.addresses[0]) of the same pool",
            MODEL,
        ),
        case(
            "range overlaps own CIDR",
            pool("x", "{addresses: [\"fd00::/120\", \"fd00::10-fd00::20\"]}"),
            p("x"),
            "spec.addresses[1]",
            "of the same pool",
            MODEL,
        ),
        case(
            "pool overlaps an older pool",
            good_pool.clone() + &pool("x", "{addresses: [10.0.0.5-10.0.0.9]}"),
            p("x"),
            "spec.addresses[0]",
            "10.0.0.5-10.0.0.9 overlaps 10.0.0.0/24 of IPAddressPool \"good\"",
            MODEL,
        ),
        case(
            "same addresses twice",
            good_pool.clone() + &pool("x", "{addresses: [10.0.0.0/24]}"),
            p("x"),
            "spec.addresses[0]",
            "overlaps 10.0.0.0/24 of IPAddressPool \"good\"",
            MODEL,
        ),
        case(
            "negative priority",
            pool(
                "x",
                "{addresses: [10.0.0.0/24], serviceAllocation: {priority: -1}}",
            ),
            p("x"),
            "spec.serviceAllocation.priority",
            "must not be negative",
            MODEL,
        ),
        case(
            "duplicate namespace",
            pool(
                "x",
                "{addresses: [10.0.0.0/24], serviceAllocation: {namespaces: [a, a]}}",
            ),
            p("x"),
            "spec.serviceAllocation.namespaces[1]",
            "duplicate namespace \"a\"",
            MODEL,
        ),
        case(
            "bad namespace name",
            pool(
                "x",
                "{addresses: [10.0.0.0/24], serviceAllocation: {namespaces: [Bad_NS]}}",
            ),
            p("x"),
            "spec.serviceAllocation.namespaces[0]",
            "lower-case alphanumerics",
            MODEL,
        ),
        case(
            "unknown selector operator",
            pool(
                "x",
                &format!(
                    "{{addresses: [10.0.0.0/24], serviceAllocation: {{serviceSelectors: {}}}}}",
                    sel("{key: app, operator: Equals, values: [a]}")
                ),
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].operator",
            "unknown operator \"Equals\"",
            MODEL,
        ),
        case(
            "In without values",
            pool(
                "x",
                &format!(
                    "{{addresses: [10.0.0.0/24], serviceAllocation: {{serviceSelectors: {}}}}}",
                    sel("{key: app, operator: In}")
                ),
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values",
            "needs at least one value",
            MODEL,
        ),
        case(
            "Exists with values",
            pool(
                "x",
                &format!(
                    "{{addresses: [10.0.0.0/24], serviceAllocation: {{namespaceSelectors: {}}}}}",
                    sel("{key: app, operator: Exists, values: [a]}")
                ),
            ),
            p("x"),
            "spec.serviceAllocation.namespaceSelectors[0].matchExpressions[0].values",
            "takes no values",
            MODEL,
        ),
        case(
            "duplicate selector value",
            pool(
                "x",
                &format!(
                    "{{addresses: [10.0.0.0/24], serviceAllocation: {{serviceSelectors: {}}}}}",
                    sel("{key: app, operator: In, values: [a, a]}")
                ),
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].values[1]",
            "duplicate value \"a\"",
            MODEL,
        ),
        case(
            "duplicate expression",
            pool(
                "x",
                &format!(
                    "{{addresses: [10.0.0.0/24], serviceAllocation: {{serviceSelectors: {}}}}}",
                    sel("{key: app, operator: Exists}, {key: app, operator: Exists}")
                ),
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[1]",
            "duplicate expression",
            MODEL,
        ),
        case(
            "duplicate selector",
            pool(
                "x",
                "{addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {a: b}}, {matchLabels: {a: b}}]}}",
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[1]",
            "duplicate selector",
            MODEL,
        ),
        case(
            "bad label key",
            pool(
                "x",
                "{addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {\"bad key\": b}}]}}",
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchLabels",
            "label key \"bad key\"",
            MODEL,
        ),
        case(
            "bad label value",
            pool(
                "x",
                "{addresses: [10.0.0.0/24], serviceAllocation: {serviceSelectors: [{matchLabels: {app: \"-x\"}}]}}",
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchLabels.app",
            "label value \"-x\"",
            MODEL,
        ),
        case(
            "bad label key prefix",
            pool(
                "x",
                &format!(
                    "{{addresses: [10.0.0.0/24], serviceAllocation: {{serviceSelectors: {}}}}}",
                    sel("{key: \"Example.COM/app\", operator: Exists}")
                ),
            ),
            p("x"),
            "spec.serviceAllocation.serviceSelectors[0].matchExpressions[0].key",
            "prefix",
            MODEL,
        ),
        case(
            "wrong namespace",
            pool("x", "{addresses: [10.0.0.0/24]}").replace(NS, "default"),
            p("x"),
            "metadata.namespace",
            "must be created in the FerroLB namespace \"ferrolb-system\", not \"default\"",
            MODEL,
        ),
        case(
            "same name twice",
            pool("x", "{addresses: [10.0.0.0/24]}") + &pool("x", "{addresses: [10.1.0.0/24]}"),
            p("x"),
            "metadata.name",
            "same name",
            MODEL,
        ),
        // L2Advertisement.
        case(
            "l2 duplicate pool",
            good_pool.clone() + &l2("x", "{ipAddressPools: [good, good]}"),
            l("x"),
            "spec.ipAddressPools[1]",
            "duplicate pool \"good\"",
            MODEL,
        ),
        case(
            "l2 weight 0",
            l2("x", "{preferredNodeSelectors: [{weight: 0, preference: {}}]}"),
            l("x"),
            "spec.preferredNodeSelectors[0].weight",
            "outside 1..100",
            MODEL,
        ),
        case(
            "l2 weight 101",
            l2("x", "{preferredNodeSelectors: [{weight: 101, preference: {}}]}"),
            l("x"),
            "spec.preferredNodeSelectors[0].weight",
            "outside 1..100",
            MODEL,
        ),
        case(
            "l2 bad preference",
            l2(
                "x",
                "{preferredNodeSelectors: [{weight: 5, preference: {matchExpressions: [{key: a, operator: Nope}]}}]}",
            ),
            l("x"),
            "spec.preferredNodeSelectors[0].preference.matchExpressions[0].operator",
            "unknown operator",
            MODEL,
        ),
        case(
            "l2 interface name too long",
            l2("x", "{interfaces: [averyveryverylongname0]}"),
            l("x"),
            "spec.interfaces[0]",
            "1 to 15 characters",
            MODEL,
        ),
        case(
            "l2 interface with slash",
            l2("x", "{interfaces: [eth0/1]}"),
            l("x"),
            "spec.interfaces[0]",
            "must not contain '/'",
            MODEL,
        ),
        case(
            "l2 duplicate interface",
            l2("x", "{interfaces: [eth0, eth0]}"),
            l("x"),
            "spec.interfaces[1]",
            "duplicate interface",
            MODEL,
        ),
        case(
            "l2 bad node selector",
            l2(
                "x",
                &format!("{{nodeSelectors: {}}}", sel("{key: a, operator: NotIn}")),
            ),
            l("x"),
            "spec.nodeSelectors[0].matchExpressions[0].values",
            "needs at least one value",
            MODEL,
        ),
        case(
            "l2 bad pool selector",
            l2("x", "{ipAddressPoolSelectors: [{matchLabels: {\"a/b/c\": x}}]}"),
            l("x"),
            "spec.ipAddressPoolSelectors[0].matchLabels",
            "label key \"a/b/c\"",
            MODEL,
        ),
        case(
            "l2 bad service selector",
            l2(
                "x",
                &format!(
                    "{{serviceSelectors: {}}}",
                    sel("{key: a, operator: DoesNotExist, values: [x]}")
                ),
            ),
            l("x"),
            "spec.serviceSelectors[0].matchExpressions[0].values",
            "takes no values",
            MODEL,
        ),
        // BGPAdvertisement.
        case(
            "aggregation 0",
            bgpadv("x", "{aggregationLength: 0}"),
            b("x"),
            "spec.aggregationLength",
            "outside 1..32",
            MODEL,
        ),
        case(
            "aggregation 33",
            bgpadv("x", "{aggregationLength: 33}"),
            b("x"),
            "spec.aggregationLength",
            "outside 1..32",
            MODEL,
        ),
        case(
            "aggregation v6 129",
            bgpadv("x", "{aggregationLengthV6: 129}"),
            b("x"),
            "spec.aggregationLengthV6",
            "outside 1..128",
            MODEL,
        ),
        case(
            "aggregation shorter than pool",
            pool("p", "{addresses: [1.2.3.0/28]}")
                + &bgpadv("x", "{ipAddressPools: [p], aggregationLength: 26}"),
            b("x"),
            "spec.aggregationLength",
            "/26 is shorter than the /28 prefix of 1.2.3.0/28 in IPAddressPool \"p\"",
            MODEL,
        ),
        case(
            "aggregation shorter than range",
            pool("p", "{addresses: [3.3.3.2-3.3.3.254]}") + &bgpadv("x", "{aggregationLength: 24}"),
            b("x"),
            "spec.aggregationLength",
            "/24 is shorter than the /26 prefix",
            MODEL,
        ),
        case(
            "aggregation v6 shorter than pool",
            pool("p", "{addresses: [\"fd00::/120\"]}") + &bgpadv("x", "{aggregationLengthV6: 64}"),
            b("x"),
            "spec.aggregationLengthV6",
            "/64 is shorter than the /120 prefix",
            MODEL,
        ),
        case(
            "service selectors with aggregation",
            bgpadv(
                "x",
                "{aggregationLength: 24, serviceSelectors: [{matchLabels: {a: b}}]}",
            ),
            b("x"),
            "spec.serviceSelectors",
            "only be used with aggregationLength 32",
            CEL,
        ),
        case(
            "community part too big",
            bgpadv("x", "{communities: [\"99999999:1\"]}"),
            b("x"),
            "spec.communities[0]",
            "not a number from 0 to 65535",
            CEL,
        ),
        case(
            "community second part too big",
            bgpadv("x", "{communities: [\"1:70000\"]}"),
            b("x"),
            "spec.communities[0]",
            "\"70000\" is not a number from 0 to 65535",
            CEL,
        ),
        case(
            "large community with two parts",
            bgpadv("x", "{communities: [\"large:1:2\"]}"),
            b("x"),
            "spec.communities[0]",
            "a large community is large:A:B:C",
            CEL,
        ),
        case(
            "large community part too big",
            bgpadv("x", "{communities: [\"large:1:2:99999999999\"]}"),
            b("x"),
            "spec.communities[0]",
            "not a number from 0 to 4294967295",
            CEL,
        ),
        case(
            "same community twice",
            community(
                "aliases",
                "{communities: [{name: noexport, value: \"65535:65281\"}]}",
            ) + &bgpadv("x", "{communities: [noexport, \"65535:65281\"]}"),
            b("x"),
            "spec.communities[1]",
            "duplicate community 65535:65281",
            MODEL,
        ),
        case(
            "conflicting localPref",
            pool("p", "{addresses: [10.9.0.0/24]}")
                + &bgpadv("a", "{localPref: 100}")
                + &bgpadv("x", "{localPref: 200}"),
            b("x"),
            "spec.localPref",
            "localPref 200 conflicts with localPref 100 of BGPAdvertisement \"a\"",
            MODEL,
        ),
        case(
            "identical advertisements",
            bgpadv("a", "{communities: [\"1:1\"]}") + &bgpadv("x", "{communities: [\"1:1\"]}"),
            b("x"),
            "spec",
            "duplicates BGPAdvertisement \"a\"",
            MODEL,
        ),
        case(
            "duplicate peer names",
            peer("r1", &format!("{{{PEER}}}")) + &bgpadv("x", "{peers: [r1, r1]}"),
            b("x"),
            "spec.peers[1]",
            "duplicate peer \"r1\"",
            MODEL,
        ),
        // BGPPeer.
        case(
            "missing myASN",
            peer("x", "{myASN: 0, peerASN: 1, peerAddress: 10.1.0.1}"),
            r("x"),
            "spec.myASN",
            "missing",
            MODEL,
        ),
        case(
            "no peer ASN",
            peer("x", "{myASN: 64500, peerAddress: 10.1.0.1}"),
            r("x"),
            "spec.peerASN",
            "set peerASN or dynamicASN",
            CEL,
        ),
        case(
            "peer ASN and dynamic ASN",
            peer_with("dynamicASN: external"),
            r("x"),
            "spec.dynamicASN",
            "mutually exclusive",
            CEL,
        ),
        case(
            "no address",
            peer("x", "{myASN: 64500, peerASN: 64501}"),
            r("x"),
            "spec.peerAddress",
            "set peerAddress or interface",
            CEL,
        ),
        case(
            "address and interface",
            peer_with("interface: eth1"),
            r("x"),
            "spec.interface",
            "mutually exclusive",
            CEL,
        ),
        case(
            "bad peer address",
            peer("x", "{myASN: 64500, peerASN: 64501, peerAddress: 10.1.0.300}"),
            r("x"),
            "spec.peerAddress",
            "\"10.1.0.300\" is not an IP address",
            CEL,
        ),
        case(
            "bad source address",
            peer_with("sourceAddress: nowhere"),
            r("x"),
            "spec.sourceAddress",
            "\"nowhere\" is not an IP address",
            CEL,
        ),
        case(
            "IPv6 router ID",
            peer_with("routerID: \"fd00::1\""),
            r("x"),
            "spec.routerID",
            "is not an IPv4 address",
            CEL,
        ),
        case(
            "hold time 2s",
            peer_with("holdTime: 2s"),
            r("x"),
            "spec.holdTime",
            "0 or at least 3s",
            CEL,
        ),
        case(
            "hold time not a duration",
            peer_with("holdTime: soon"),
            r("x"),
            "spec.holdTime",
            "\"soon\" is not a duration",
            MODEL,
        ),
        case(
            "keepalive not below hold",
            peer_with("holdTime: 9s, keepaliveTime: 9s"),
            r("x"),
            "spec.keepaliveTime",
            "shorter than holdTime",
            CEL,
        ),
        case(
            "keepalive with hold 0",
            peer_with("holdTime: 0s, keepaliveTime: 10s"),
            r("x"),
            "spec.keepaliveTime",
            "keepaliveTime must be 0 too",
            CEL,
        ),
        case(
            "connect time 0",
            peer_with("connectTime: 0s"),
            r("x"),
            "spec.connectTime",
            "whole seconds from 1s to 65535s",
            CEL,
        ),
        case(
            "connect time too long",
            peer_with("connectTime: 70000s"),
            r("x"),
            "spec.connectTime",
            "whole seconds from 1s to 65535s",
            CEL,
        ),
        case(
            "multi-hop iBGP",
            peer(
                "x",
                "{myASN: 64500, peerASN: 64500, peerAddress: 10.1.0.1, ebgpMultiHop: true}",
            ),
            r("x"),
            "spec.ebgpMultiHop",
            "iBGP",
            CEL,
        ),
        case(
            "password twice",
            peer_with("password: a, passwordSecret: {name: s}"),
            r("x"),
            "spec.passwordSecret",
            "mutually exclusive",
            CEL,
        ),
        case(
            "secret of the wrong type",
            secret("s", "Opaque", "{password: czNjcmV0}") + &peer_with("passwordSecret: {name: s}"),
            r("x"),
            "spec.passwordSecret",
            "must be of type kubernetes.io/basic-auth, not \"Opaque\"",
            MODEL,
        ),
        case(
            "secret without password",
            secret("s", "kubernetes.io/basic-auth", "{username: czNjcmV0}")
                + &peer_with("passwordSecret: {name: s}"),
            r("x"),
            "spec.passwordSecret",
            "has no key password",
            MODEL,
        ),
        case(
            "secret in another namespace",
            peer_with("passwordSecret: {name: s, namespace: kube-system}"),
            r("x"),
            "spec.passwordSecret.namespace",
            "must be in namespace \"ferrolb-system\"",
            MODEL,
        ),
        case(
            "port above 16384",
            peer_with("peerPort: 20000"),
            r("x"),
            "spec.peerPort",
            "outside 1..16384",
            MODEL,
        ),
        case(
            "local ASN 0",
            peer_with("localASN: 0"),
            r("x"),
            "spec.localASN",
            "1 to 4294967295",
            MODEL,
        ),
        case(
            "same session twice",
            peer("a", &format!("{{{PEER}}}")) + &peer("x", &format!("{{{PEER}, holdTime: 30s}}")),
            r("x"),
            "spec.peerAddress",
            "BGPPeer \"a\" already peers with this address",
            MODEL,
        ),
        case(
            "identical peers",
            peer("a", &format!("{{{PEER}}}")) + &peer("x", &format!("{{{PEER}}}")),
            r("x"),
            "spec.peerAddress",
            "duplicates BGPPeer \"a\"",
            MODEL,
        ),
        case(
            "BFD echo over IPv6",
            bfd("echo", "{echoMode: true}")
                + &pool("v6", "{addresses: [\"fd00::/120\"]}")
                + &bgpadv("adv", "{}")
                + &peer_with("bfdProfile: echo"),
            r("x"),
            "spec.bfdProfile",
            "echo mode, which is IPv4-only",
            MODEL,
        ),
        // Community.
        case(
            "community value with three parts",
            community("x", "{communities: [{name: a, value: \"1:2:3\"}]}"),
            c("x"),
            "spec.communities[0].value",
            "is not A:B",
            CEL,
        ),
        case(
            "community value too big",
            community("x", "{communities: [{name: a, value: \"70000:1\"}]}"),
            c("x"),
            "spec.communities[0].value",
            "not a number from 0 to 65535",
            CEL,
        ),
        case(
            "alias used twice in one object",
            community(
                "x",
                "{communities: [{name: a, value: \"1:1\"}, {name: a, value: \"1:2\"}]}",
            ),
            c("x"),
            "spec.communities[1].name",
            "duplicate alias \"a\"",
            MODEL,
        ),
        case(
            "alias defined by an older object",
            community("a", "{communities: [{name: a, value: \"1:1\"}]}")
                + &community("x", "{communities: [{name: a, value: \"1:2\"}]}"),
            c("x"),
            "spec.communities[0].name",
            "already defined by another Community",
            MODEL,
        ),
        // BFDProfile.
        case(
            "receive interval 5",
            bfd("x", "{receiveInterval: 5}"),
            f("x"),
            "spec.receiveInterval",
            "outside 10..60000",
            MODEL,
        ),
        case(
            "transmit interval 60001",
            bfd("x", "{transmitInterval: 60001}"),
            f("x"),
            "spec.transmitInterval",
            "outside 10..60000",
            MODEL,
        ),
        case(
            "detect multiplier 1",
            bfd("x", "{detectMultiplier: 1}"),
            f("x"),
            "spec.detectMultiplier",
            "outside 2..255",
            MODEL,
        ),
        case(
            "echo interval 70000",
            bfd("x", "{echoInterval: 70000}"),
            f("x"),
            "spec.echoInterval",
            "outside 10..60000",
            MODEL,
        ),
        case(
            "minimum TTL 255",
            bfd("x", "{minimumTtl: 255}"),
            f("x"),
            "spec.minimumTtl",
            "outside 1..254",
            MODEL,
        ),
    ]
}

#[test]
fn every_invalid_case_is_reported_at_its_field() {
    let cases = cases();
    assert!(
        cases.len() >= 50,
        "the table must hold at least 50 invalid inputs"
    );
    let mut failures = Vec::new();
    for case in &cases {
        let objects = parse(&case.yaml);
        let outcome = config::build(NS, &objects);
        let found = outcome.issues_of(case.kind, case.object).find(|i| {
            i.severity == Severity::Invalid && i.field == case.field && i.message.contains(case.message)
        });
        if found.is_none() {
            failures.push(format!(
                "{}: expected {} {:?} {}: …{}…, got {:#?}",
                case.name, case.kind, case.object, case.field, case.message, outcome.issues
            ));
            continue;
        }
        let kept = match case.kind {
            "IPAddressPool" => outcome.config.pools.contains_key(case.object),
            "L2Advertisement" => outcome.config.l2_advertisements.contains_key(case.object),
            "BGPAdvertisement" => outcome.config.bgp_advertisements.contains_key(case.object),
            "BGPPeer" => outcome.config.peers.contains_key(case.object),
            "BFDProfile" => outcome.config.bfd_profiles.contains_key(case.object),
            _ => false,
        };
        let unique = case.yaml.matches(&format!("name: {},", case.object)).count() == 1;
        if kept && unique {
            failures.push(format!(
                "{}: the invalid object is still in the config",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn single_object_rules_are_also_cel_rules() {
    let mut failures = Vec::new();
    for case in cases().iter().filter(|c| c.cel) {
        let objects = parse(&case.yaml);
        let json = object_json(&objects, case.kind, case.object);
        if cel_check(case.kind, &json).is_ok() {
            failures.push(format!("{}: the CRD's CEL rules accept {json}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
