//! Label selectors: the checks the API server would make, and compiled matching.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use super::issue::Findings;

/// A list of label selectors that matches when any one of them does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnySelector(Vec<Selector>);

impl From<Selector> for AnySelector {
    fn from(selector: Selector) -> Self {
        Self(vec![selector])
    }
}

impl AnySelector {
    /// Whether the list is empty (callers decide what "no selector" means).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any selector matches the labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().any(|s| s.matches(labels))
    }

    /// Matches when the list is empty or any selector matches: the usual meaning of
    /// an optional selector list such as `nodeSelectors`.
    pub fn matches_or_empty(&self, labels: &BTreeMap<String, String>) -> bool {
        self.is_empty() || self.matches(labels)
    }
}

/// Checks a selector list at `field` and compiles the valid selectors; invalid ones are
/// reported and left out (the object is then invalid anyway).
pub(crate) fn compile_list(list: &[LabelSelector], field: &str, findings: &mut Findings) -> AnySelector {
    let mut seen: Vec<&LabelSelector> = Vec::new();
    let mut compiled = Vec::new();
    for (i, selector) in list.iter().enumerate() {
        let path = format!("{field}[{i}]");
        if seen.contains(&selector) {
            findings.invalid(&path, "duplicate selector");
            continue;
        }
        seen.push(selector);
        if let Some(selector) = compile(selector, &path, findings) {
            compiled.push(selector);
        }
    }
    AnySelector(compiled)
}

/// Checks one selector at `path`; `None` when it is invalid.
pub(crate) fn compile(selector: &LabelSelector, path: &str, findings: &mut Findings) -> Option<Selector> {
    let mut bad = false;
    for (key, value) in selector.match_labels.iter().flatten() {
        if let Some(why) = label_key_error(key) {
            findings.invalid(format!("{path}.matchLabels"), format!("label key {key:?}: {why}"));
            bad = true;
        }
        if let Some(why) = label_value_error(value) {
            findings.invalid(
                format!("{path}.matchLabels.{key}"),
                format!("label value {value:?}: {why}"),
            );
            bad = true;
        }
    }
    let expressions = selector.match_expressions.as_deref().unwrap_or_default();
    for (j, expr) in expressions.iter().enumerate() {
        let at = format!("{path}.matchExpressions[{j}]");
        if expressions[..j].contains(expr) {
            findings.invalid(&at, "duplicate expression");
            bad = true;
            continue;
        }
        if let Some(why) = label_key_error(&expr.key) {
            findings.invalid(format!("{at}.key"), format!("label key {:?}: {why}", expr.key));
            bad = true;
        }
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" => {
                if values.is_empty() {
                    findings.invalid(
                        format!("{at}.values"),
                        format!("operator {} needs at least one value", expr.operator),
                    );
                    bad = true;
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    findings.invalid(
                        format!("{at}.values"),
                        format!("operator {} takes no values", expr.operator),
                    );
                    bad = true;
                }
            }
            other => {
                findings.invalid(
                    format!("{at}.operator"),
                    format!("unknown operator {other:?}: use In, NotIn, Exists or DoesNotExist"),
                );
                bad = true;
            }
        }
        let mut distinct = BTreeSet::new();
        for (k, value) in values.iter().enumerate() {
            if !distinct.insert(value) {
                findings.invalid(format!("{at}.values[{k}]"), format!("duplicate value {value:?}"));
                bad = true;
            } else if let Some(why) = label_value_error(value) {
                findings.invalid(
                    format!("{at}.values[{k}]"),
                    format!("label value {value:?}: {why}"),
                );
                bad = true;
            }
        }
    }
    if bad {
        return None;
    }
    Selector::try_from(selector.clone()).ok()
}

/// Why `key` is not a valid label key (`[prefix/]name`), if it is not.
pub(crate) fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(why) = dns_subdomain_error(prefix)
    {
        return Some(format!("prefix {why}"));
    }
    if name.is_empty() {
        return Some("name part must not be empty".into());
    }
    label_value_error(name)
}

/// Why `value` is not a valid label value, if it is not.
pub(crate) fn label_value_error(value: &str) -> Option<String> {
    if value.len() > 63 {
        return Some("must be at most 63 characters".into());
    }
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let edges_ok = value.chars().next().is_none_or(|c| c.is_ascii_alphanumeric())
        && value.chars().last().is_none_or(|c| c.is_ascii_alphanumeric());
    (!(edges_ok && value.chars().all(ok_inner)))
        .then(|| "must be alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".into())
}

/// Why `name` is not a DNS label (RFC 1123: a namespace or interface-safe name), if it is not.
pub(crate) fn dns_label_error(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 63 {
        return Some("must be 1 to 63 characters".into());
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| "must be lower-case alphanumerics or '-', starting and ending with an alphanumeric".into())
}

/// Why `name` is not a DNS subdomain (RFC 1123), if it is not.
pub(crate) fn dns_subdomain_error(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 253 {
        return Some("must be 1 to 253 characters".into());
    }
    name.split('.').find_map(dns_label_error)
}
