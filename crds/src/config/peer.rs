//! BGPPeer → [`Peer`] and BFDProfile → [`BfdProfile`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;

use crate::api::{self, DynamicAsn};

use super::issue::Findings;
use super::selector::{self, AnySelector};

/// Hold time used when a peer sets neither hold nor keepalive time.
pub const DEFAULT_HOLD_TIME: Duration = Duration::from_secs(90);

/// The peer's AS, fixed or dynamic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAsn {
    /// Exactly this AS.
    Fixed(u32),
    /// Any AS equal to ours.
    Internal,
    /// Any AS different from ours.
    External,
}

/// Where the peer is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerAddress {
    /// A numbered session.
    Ip(IpAddr),
    /// An unnumbered session over this interface.
    Interface(String),
}

/// A valid BGP peer, with its password resolved and timers defaulted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The BGPPeer's name.
    pub name: String,
    /// Our AS.
    pub my_asn: u32,
    /// The peer's AS.
    pub peer_asn: PeerAsn,
    /// AS presented instead of `my_asn`, if set.
    pub local_asn: Option<u32>,
    /// Where the peer is.
    pub address: PeerAddress,
    /// Local address to open the session from.
    pub source_address: Option<IpAddr>,
    /// The peer's TCP port.
    pub port: u16,
    /// Proposed hold time (zero disables keepalives).
    pub hold_time: Duration,
    /// Keepalive interval.
    pub keepalive_time: Duration,
    /// Time between connection attempts, if set.
    pub connect_time: Option<Duration>,
    /// BGP identifier, if set.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that open this session (all when empty).
    pub node_selectors: AnySelector,
    /// TCP MD5 password, from the spec or the referenced Secret.
    pub password: Option<String>,
    /// Name of a valid BFDProfile.
    pub bfd_profile: Option<String>,
    /// Negotiate graceful restart.
    pub graceful_restart: bool,
    /// eBGP peer more than one hop away.
    pub ebgp_multi_hop: bool,
    /// VRF of the session.
    pub vrf: Option<String>,
    /// Carry both address families on this session.
    pub dual_stack_address_family: bool,
}

/// A valid BFD profile with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdProfile {
    /// The profile's name.
    pub name: String,
    /// Required minimum receive interval, ms.
    pub receive_interval_ms: u32,
    /// Desired minimum transmit interval, ms.
    pub transmit_interval_ms: u32,
    /// Detection multiplier.
    pub detect_multiplier: u32,
    /// Echo interval, ms.
    pub echo_interval_ms: u32,
    /// Echo mode on.
    pub echo_mode: bool,
    /// Wait for the peer to start.
    pub passive_mode: bool,
    /// Minimum accepted TTL (multi-hop).
    pub minimum_ttl: Option<u32>,
}

/// Checks one BFDProfile.
pub(crate) fn check_bfd(profile: &api::BFDProfile, findings: &mut Findings) -> Option<BfdProfile> {
    let spec = &profile.spec;
    let mut ranged = |field: &str, value: Option<u32>, min: u32, max: u32, default: u32| {
        let value = value.unwrap_or(default);
        if !(min..=max).contains(&value) {
            findings.invalid(
                format!("spec.{field}"),
                format!("{value} is outside {min}..{max}"),
            );
        }
        value
    };
    let receive_interval_ms = ranged(
        "receiveInterval",
        spec.receive_interval,
        10,
        60000,
        api::DEFAULT_INTERVAL_MS,
    );
    let transmit_interval_ms = ranged(
        "transmitInterval",
        spec.transmit_interval,
        10,
        60000,
        api::DEFAULT_INTERVAL_MS,
    );
    let detect_multiplier = ranged(
        "detectMultiplier",
        spec.detect_multiplier,
        2,
        255,
        api::DEFAULT_DETECT_MULTIPLIER,
    );
    let echo_interval_ms = ranged(
        "echoInterval",
        spec.echo_interval,
        10,
        60000,
        api::DEFAULT_ECHO_INTERVAL_MS,
    );
    let minimum_ttl = spec
        .minimum_ttl
        .map(|ttl| ranged("minimumTtl", Some(ttl), 1, 254, ttl));
    (!findings.is_invalid()).then(|| BfdProfile {
        name: findings.object().name.clone(),
        receive_interval_ms,
        transmit_interval_ms,
        detect_multiplier,
        echo_interval_ms,
        echo_mode: spec.echo_mode.unwrap_or(false),
        passive_mode: spec.passive_mode.unwrap_or(false),
        minimum_ttl,
    })
}

/// What a peer may refer to.
pub(crate) struct PeerContext<'a> {
    pub namespace: &'a str,
    pub secrets: &'a [Secret],
    pub bfd_profiles: &'a BTreeMap<String, BfdProfile>,
}

/// Checks one BGPPeer on its own (duplicates across peers are checked by the caller).
pub(crate) fn check(peer: &api::BGPPeer, ctx: &PeerContext<'_>, findings: &mut Findings) -> Option<Peer> {
    let spec = &peer.spec;
    if spec.my_asn == 0 {
        findings.invalid("spec.myASN", "missing: set the local AS number");
    }
    let peer_asn = match (spec.peer_asn.filter(|asn| *asn != 0), spec.dynamic_asn) {
        (Some(asn), None) => PeerAsn::Fixed(asn),
        (None, Some(DynamicAsn::Internal)) => PeerAsn::Internal,
        (None, Some(DynamicAsn::External)) => PeerAsn::External,
        (None, None) => {
            findings.invalid("spec.peerASN", "missing: set peerASN or dynamicASN");
            PeerAsn::Internal
        }
        (Some(_), Some(_)) => {
            findings.invalid("spec.dynamicASN", "peerASN and dynamicASN are mutually exclusive");
            PeerAsn::Internal
        }
    };
    if spec.local_asn == Some(0) {
        findings.invalid("spec.localASN", "must be from 1 to 4294967295");
    }
    let address = match (&spec.peer_address, &spec.interface) {
        (Some(addr), None) => match addr.parse::<IpAddr>() {
            Ok(ip) => PeerAddress::Ip(ip),
            Err(_) => {
                findings.invalid("spec.peerAddress", format!("{addr:?} is not an IP address"));
                PeerAddress::Interface(String::new())
            }
        },
        (None, Some(interface)) if !interface.is_empty() => PeerAddress::Interface(interface.clone()),
        (Some(_), Some(_)) => {
            findings.invalid(
                "spec.interface",
                "peerAddress and interface are mutually exclusive",
            );
            PeerAddress::Interface(String::new())
        }
        _ => {
            findings.invalid("spec.peerAddress", "missing: set peerAddress or interface");
            PeerAddress::Interface(String::new())
        }
    };
    let source_address = spec.source_address.as_ref().and_then(|addr| {
        let parsed = addr.parse::<IpAddr>().ok();
        if parsed.is_none() {
            findings.invalid("spec.sourceAddress", format!("{addr:?} is not an IP address"));
        }
        parsed
    });
    let router_id = spec.router_id.as_ref().and_then(|id| {
        let parsed = id.parse::<Ipv4Addr>().ok();
        if parsed.is_none() {
            findings.invalid("spec.routerID", format!("{id:?} is not an IPv4 address"));
        }
        parsed
    });
    if spec.peer_port == 0 || spec.peer_port > 16384 {
        findings.invalid("spec.peerPort", format!("{} is outside 1..16384", spec.peer_port));
    }
    let (hold_time, keepalive_time) = timers(spec, findings);
    let connect_time = parse_duration(spec.connect_time.as_deref(), "spec.connectTime", findings);
    if let Some(connect) = connect_time
        && (connect < Duration::from_secs(1)
            || connect > Duration::from_secs(65535)
            || connect.subsec_nanos() != 0)
    {
        findings.invalid("spec.connectTime", "must be whole seconds from 1s to 65535s");
    }
    if spec.ebgp_multi_hop && peer_asn == PeerAsn::Fixed(spec.my_asn) {
        findings.invalid(
            "spec.ebgpMultiHop",
            "cannot be set for an iBGP peer (peerASN equals myASN)",
        );
    }
    if spec.ebgp_multi_hop && peer_asn == PeerAsn::Internal {
        findings.invalid(
            "spec.ebgpMultiHop",
            "cannot be set for an iBGP peer (dynamicASN internal)",
        );
    }
    let password = password(spec, ctx, findings);
    if let Some(profile) = &spec.bfd_profile
        && !ctx.bfd_profiles.contains_key(profile)
    {
        findings.pending(
            "spec.bfdProfile",
            format!("BFDProfile {profile:?} does not exist or is invalid"),
        );
    }
    if let Some(vrf) = &spec.vrf
        && (vrf.is_empty() || vrf.len() > 15)
    {
        findings.invalid("spec.vrf", "a VRF name is 1 to 15 characters");
    }
    let node_selectors = selector::compile_list(&spec.node_selectors, "spec.nodeSelectors", findings);
    (!findings.is_blocked()).then(|| Peer {
        name: findings.object().name.clone(),
        my_asn: spec.my_asn,
        peer_asn,
        local_asn: spec.local_asn,
        address,
        source_address,
        port: spec.peer_port,
        hold_time,
        keepalive_time,
        connect_time,
        router_id,
        node_selectors,
        password,
        bfd_profile: spec.bfd_profile.clone(),
        graceful_restart: spec.enable_graceful_restart,
        ebgp_multi_hop: spec.ebgp_multi_hop,
        vrf: spec.vrf.clone(),
        dual_stack_address_family: spec.dual_stack_address_family,
    })
}

/// Hold and keepalive time with MetalLB's defaults: either one derives the other
/// (keepalive = hold / 3), hold time rounds to whole seconds.
fn timers(spec: &api::BGPPeerSpec, findings: &mut Findings) -> (Duration, Duration) {
    let hold = parse_duration(spec.hold_time.as_deref(), "spec.holdTime", findings)
        .map(|d| Duration::from_secs(d.as_secs_f64().round() as u64));
    let keepalive = parse_duration(spec.keepalive_time.as_deref(), "spec.keepaliveTime", findings);
    if let Some(hold) = hold
        && !hold.is_zero()
        && hold < Duration::from_secs(3)
    {
        findings.invalid("spec.holdTime", "must be 0 or at least 3s");
    }
    match (hold, keepalive) {
        (None, None) => (DEFAULT_HOLD_TIME, DEFAULT_HOLD_TIME / 3),
        (Some(hold), None) => (hold, hold / 3),
        (None, Some(keepalive)) => (keepalive * 3, keepalive),
        (Some(hold), Some(keepalive)) => {
            let ok = if hold.is_zero() {
                keepalive.is_zero()
            } else {
                keepalive < hold
            };
            if !ok {
                findings.invalid(
                    "spec.keepaliveTime",
                    "must be shorter than holdTime (with holdTime 0, keepaliveTime must be 0 too)",
                );
            }
            (hold, keepalive)
        }
    }
}

fn parse_duration(text: Option<&str>, field: &str, findings: &mut Findings) -> Option<Duration> {
    let text = text?;
    match text.parse::<kube::core::Duration>() {
        Ok(d) if !d.is_negative() => Some(d.into()),
        Ok(_) => {
            findings.invalid(field, format!("{text:?} is negative"));
            None
        }
        Err(_) => {
            findings.invalid(field, format!("{text:?} is not a duration such as 90s or 1m30s"));
            None
        }
    }
}

fn password(spec: &api::BGPPeerSpec, ctx: &PeerContext<'_>, findings: &mut Findings) -> Option<String> {
    // An empty reference (`passwordSecret: {}`, as MetalLB's converter writes) means none.
    let secret_ref = spec
        .password_secret
        .as_ref()
        .filter(|r| r.name.as_deref().is_some_and(|n| !n.is_empty()));
    let reference = match (&spec.password, secret_ref) {
        (Some(_), Some(_)) => {
            findings.invalid(
                "spec.passwordSecret",
                "password and passwordSecret are mutually exclusive",
            );
            return None;
        }
        (Some(password), None) => return Some(password.clone()),
        (None, None) => return None,
        (None, Some(reference)) => reference,
    };
    let name = reference.name.as_deref().unwrap_or_default();
    if let Some(namespace) = reference.namespace.as_deref().filter(|ns| *ns != ctx.namespace) {
        findings.invalid(
            "spec.passwordSecret.namespace",
            format!(
                "the Secret must be in namespace {:?}, not {namespace:?}",
                ctx.namespace
            ),
        );
        return None;
    }
    let Some(secret) = ctx
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
    else {
        findings.pending("spec.passwordSecret", format!("Secret {name:?} does not exist"));
        return None;
    };
    if secret.type_.as_deref() != Some("kubernetes.io/basic-auth") {
        findings.invalid(
            "spec.passwordSecret",
            format!(
                "Secret {name:?} must be of type kubernetes.io/basic-auth, not {:?}",
                secret.type_.as_deref().unwrap_or("")
            ),
        );
        return None;
    }
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|b| String::from_utf8(b.0.clone()));
    let from_string_data = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get("password"))
        .cloned();
    match (from_data, from_string_data) {
        (Some(Ok(password)), _) | (None, Some(password)) => Some(password),
        (Some(Err(_)), _) => {
            findings.invalid(
                "spec.passwordSecret",
                format!("Secret {name:?}: key password is not UTF-8"),
            );
            None
        }
        (None, None) => {
            findings.invalid(
                "spec.passwordSecret",
                format!("Secret {name:?} has no key password"),
            );
            None
        }
    }
}
