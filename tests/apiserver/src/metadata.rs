//! Object metadata validation as kube-apiserver does it: names by kind, label keys and
//! values, annotation keys and total size — with kube-apiserver's messages, so a
//! client sees here the 422 it would get from a real cluster (a label value over 63
//! characters is the classic one).

use serde_json::Value;

use crate::registry::{RBAC, ResourceType};

const LABEL_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
const ANNOTATIONS_MAX: usize = 256 * 1024;

const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

/// Every problem with `object`'s metadata, as (field, message) causes of a 422.
pub fn check(rt: &ResourceType, object: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let meta = &object["metadata"];
    if let Some(name) = meta["name"].as_str() {
        for problem in name_problems(rt, name) {
            causes.push(("metadata.name".into(), invalid(name, &problem)));
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (key, value) in labels {
            for problem in qualified_name_problems(key) {
                causes.push(("metadata.labels".into(), invalid(key, &problem)));
            }
            match value.as_str() {
                Some(value) => {
                    for problem in label_value_problems(value) {
                        causes.push(("metadata.labels".into(), invalid(value, &problem)));
                    }
                }
                None => causes.push((
                    format!("metadata.labels.{key}"),
                    "Invalid value: must be a string".into(),
                )),
            }
        }
    }
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut size = 0;
        for (key, value) in annotations {
            for problem in qualified_name_problems(&key.to_lowercase()) {
                causes.push(("metadata.annotations".into(), invalid(key, &problem)));
            }
            size += key.len() + value.as_str().map_or(0, str::len);
        }
        if size > ANNOTATIONS_MAX {
            causes.push((
                "metadata.annotations".into(),
                format!("Too long: may not be more than {ANNOTATIONS_MAX} bytes"),
            ));
        }
    }
    causes
}

fn invalid(value: &str, problem: &str) -> String {
    format!("Invalid value: {value:?}: {problem}")
}

/// The name rule kube-apiserver applies to each kind.
fn name_problems(rt: &ResourceType, name: &str) -> Vec<String> {
    match (rt.gr.group.as_str(), rt.gr.resource.as_str()) {
        ("", "namespaces") => dns1123_label(name),
        ("", "services") => dns1035_label(name),
        (RBAC, _) => path_segment(name),
        _ => dns1123_subdomain(name),
    }
}

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_label(name: &str, first: impl Fn(u8) -> bool) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && first(bytes[0])
        && is_lower_alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| is_lower_alnum(b) || b == b'-')
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn dns1123_label(name: &str) -> Vec<String> {
    label_problems(name, is_lower_alnum, DNS1123_LABEL)
}

fn dns1035_label(name: &str) -> Vec<String> {
    label_problems(name, |b| b.is_ascii_lowercase(), DNS1035_LABEL)
}

/// A DNS label's problems: its length, and its shape (`first` admits its first byte).
fn label_problems(name: &str, first: impl Fn(u8) -> bool, shape: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > LABEL_MAX {
        problems.push(too_long(LABEL_MAX));
    }
    if !is_label(name, first) {
        problems.push(shape.into());
    }
    problems
}

fn dns1123_subdomain(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if name.len() > SUBDOMAIN_MAX {
        problems.push(too_long(SUBDOMAIN_MAX));
    }
    if !name.split('.').all(|part| is_label(part, is_lower_alnum)) {
        problems.push(DNS1123_SUBDOMAIN.into());
    }
    problems
}

fn path_segment(name: &str) -> Vec<String> {
    if name == "." || name == ".." {
        return vec![format!("may not be '{name}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| name.contains(**bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, the shape of label names and values.
fn is_label_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a name part.
fn qualified_name_problems(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            if prefix.is_empty() {
                problems.push("prefix part must be non-empty".into());
            } else {
                problems.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|p| format!("prefix part {p}")),
                );
            }
            name
        }
        None => key,
    };
    if name.is_empty() {
        problems.push("name part must be non-empty".into());
    } else {
        if name.len() > LABEL_MAX {
            problems.push(format!("name part {}", too_long(LABEL_MAX)));
        }
        if !is_label_text(name) {
            problems.push(QUALIFIED_NAME.into());
        }
    }
    problems
}

fn label_value_problems(value: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if value.len() > LABEL_MAX {
        problems.push(too_long(LABEL_MAX));
    }
    if !value.is_empty() && !is_label_text(value) {
        problems.push(LABEL_VALUE.into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtins;
    use serde_json::json;

    fn rt(resource: &str) -> ResourceType {
        builtins()
            .into_iter()
            .find(|t| t.gr.resource == resource)
            .expect("a built-in type")
    }

    fn causes(resource: &str, meta: Value) -> Vec<(String, String)> {
        check(&rt(resource), &json!({ "metadata": meta }))
    }

    #[test]
    fn names_follow_the_rule_of_their_kind() {
        let long = "a".repeat(64);
        assert!(causes("configmaps", json!({"name": "a.b-c"})).is_empty());
        assert!(causes("configmaps", json!({"name": long})).is_empty());
        assert!(
            causes("namespaces", json!({"name": "a.b"}))[0]
                .1
                .contains("RFC 1123 label")
        );
        assert!(
            causes("namespaces", json!({"name": long}))[0]
                .1
                .ends_with("must be no more than 63 characters")
        );
        assert!(
            causes("services", json!({"name": "1web"}))[0]
                .1
                .contains("DNS-1035")
        );
        assert!(causes("clusterroles", json!({"name": "system:ferrolb:Speaker"})).is_empty());
        assert_eq!(
            causes("roles", json!({"name": "a/b"})),
            vec![(
                "metadata.name".into(),
                "Invalid value: \"a/b\": may not contain '/'".into()
            )]
        );
        assert!(!causes("secrets", json!({"name": "Upper"})).is_empty());
        assert!(!causes("secrets", json!({"name": "x".repeat(254)})).is_empty());
    }

    #[test]
    fn label_values_are_limited_to_63_characters() {
        let node = "n".repeat(64);
        let found = causes(
            "configmaps",
            json!({"name": "a", "labels": {"ferrolb.io/node": node}}),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "metadata.labels");
        assert_eq!(
            found[0].1,
            format!("Invalid value: {node:?}: must be no more than 63 characters")
        );
        assert!(
            causes(
                "configmaps",
                json!({"name": "a", "labels": {"k": "", "a.b/c_d": "V-1.x"}})
            )
            .is_empty()
        );
        assert!(
            causes("configmaps", json!({"name": "a", "labels": {"k": "-x"}}))[0]
                .1
                .contains("a valid label")
        );
        assert!(
            causes(
                "configmaps",
                json!({"name": "a", "labels": {"Bad_Prefix/k": "v"}})
            )[0]
            .1
            .starts_with("Invalid value: \"Bad_Prefix/k\": prefix part")
        );
        assert!(!causes("configmaps", json!({"name": "a", "labels": {"/k": "v"}})).is_empty());
    }

    #[test]
    fn annotations_have_a_total_size() {
        let big = "x".repeat(ANNOTATIONS_MAX);
        let found = causes("configmaps", json!({"name": "a", "annotations": {"k": big}}));
        assert_eq!(
            found,
            vec![(
                "metadata.annotations".into(),
                "Too long: may not be more than 262144 bytes".into()
            )]
        );
        assert!(causes("configmaps", json!({"name": "a", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}})).is_empty());
    }
}
