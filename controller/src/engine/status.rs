//! IPAddressPool status and the controller's ConfigurationState, computed from the
//! allocator and the config model's findings.

use ferrolb_crds::api::{ConfigurationResult, ConfigurationStateStatus, IPAddressPoolStatus};
use ferrolb_crds::config::{Issue, Severity};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::allocator::Usage;

/// The status of one pool: its usage when valid, zero counts and why when not.
pub fn pool_status(
    usage: Option<Usage>,
    issues: &[&Issue],
    previous: &[Condition],
    now: &Time,
) -> IPAddressPoolStatus {
    let invalid: Vec<&&Issue> = issues
        .iter()
        .filter(|i| i.severity == Severity::Invalid)
        .collect();
    let message = invalid
        .iter()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect::<Vec<_>>()
        .join("; ");
    // The config model words every overlap with " overlaps "; that is the only kind of
    // conflict between pools.
    let overlapping = invalid.iter().any(|i| i.message.contains(" overlaps "));
    let valid = usage.is_some() && invalid.is_empty();
    let conditions = vec![
        condition(
            "Valid",
            valid,
            if valid { "Valid" } else { "Invalid" },
            if valid { "the pool is in use" } else { &message },
            previous,
            now,
        ),
        condition(
            "Overlapping",
            overlapping,
            if overlapping { "Overlapping" } else { "Disjoint" },
            if overlapping { &message } else { "" },
            previous,
            now,
        ),
    ];
    let usage = usage.unwrap_or_default();
    let count = |n: u128| i64::try_from(n).unwrap_or(i64::MAX);
    IPAddressPoolStatus {
        assigned_ipv4: count(usage.assigned[0]),
        assigned_ipv6: count(usage.assigned[1]),
        available_ipv4: count(usage.available[0]),
        available_ipv6: count(usage.available[1]),
        conditions,
    }
}

/// The controller's verdict on the pools.
pub fn configuration_state(issues: &[Issue], previous: &[Condition], now: &Time) -> ConfigurationStateStatus {
    let invalid: Vec<String> = issues
        .iter()
        .filter(|i| i.severity == Severity::Invalid)
        .map(ToString::to_string)
        .collect();
    let valid = invalid.is_empty();
    ConfigurationStateStatus {
        result: if valid {
            ConfigurationResult::Valid
        } else {
            ConfigurationResult::Invalid
        },
        error_summary: invalid.join("\n"),
        conditions: vec![condition(
            "Valid",
            valid,
            if valid { "Valid" } else { "Invalid" },
            if valid {
                "every IPAddressPool is valid"
            } else {
                "some IPAddressPools are invalid and ignored; see errorSummary"
            },
            previous,
            now,
        )],
    }
}

/// A condition keeping the previous transition time when its status did not change.
fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: since,
        observed_generation: None,
    }
}
