//! Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for with
//! `Accept: application/json;as=Table;…`. Custom resources get their CRD's
//! additionalPrinterColumns, Services and Events kube-apiserver's columns, anything
//! else Name and Age.

use serde_json::{Value, json};

/// A column: header, type, JSONPath-like path (`.spec.x[0].y`), priority.
struct Column {
    name: String,
    kind: String,
    path: String,
    priority: i64,
}

/// The Table for `items` of a type whose CRD (if any) is `crd_version`.
pub fn render(
    items: &[Value],
    crd_version: Option<&Value>,
    kind: &str,
    resource_version: u64,
    now: i64,
) -> Value {
    let columns = columns(crd_version, kind);
    let mut definitions = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    definitions.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": if c.kind == "date" { "string" } else { c.kind.as_str() }, "format": "", "description": c.name, "priority": c.priority})
    }));
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut cells = vec![item["metadata"]["name"].clone()];
            cells.extend(columns.iter().map(|c| cell(item, c, now)));
            json!({
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": item["metadata"]},
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

fn columns(crd_version: Option<&Value>, kind: &str) -> Vec<Column> {
    let column = |name: &str, kind: &str, path: &str, priority: i64| Column {
        name: name.into(),
        kind: kind.into(),
        path: path.into(),
        priority,
    };
    if let Some(version) = crd_version {
        let mut columns: Vec<Column> = version["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                column(
                    c["name"].as_str().unwrap_or(""),
                    c["type"].as_str().unwrap_or("string"),
                    c["jsonPath"].as_str().unwrap_or(""),
                    c["priority"].as_i64().unwrap_or(0),
                )
            })
            .collect();
        if columns.is_empty() {
            columns.push(column("Age", "date", ".metadata.creationTimestamp", 0));
        }
        return columns;
    }
    match kind {
        "Service" => vec![
            column("Type", "string", ".spec.type", 0),
            column("Cluster-IP", "string", ".spec.clusterIP", 0),
            column("External-IP", "external-ips", ".status.loadBalancer.ingress", 0),
            column("Port(s)", "ports", ".spec.ports", 0),
            column("Age", "date", ".metadata.creationTimestamp", 0),
            column("Selector", "selector", ".spec.selector", 1),
        ],
        // Core Events (both Event APIs share them) as kubectl shows them.
        "Event" => vec![
            column("Last Seen", "event-time", ".lastTimestamp", 0),
            column("Type", "string", ".type", 0),
            column("Reason", "string", ".reason", 0),
            column("Object", "object", ".involvedObject", 0),
            column("Message", "string", ".message", 0),
        ],
        _ => vec![column("Age", "date", ".metadata.creationTimestamp", 0)],
    }
}

fn cell(item: &Value, column: &Column, now: i64) -> Value {
    let value = match column.kind.as_str() {
        // events.k8s.io writers set only eventTime.
        "event-time" => lookup(item, &column.path).or_else(|| item.get("eventTime")),
        _ => lookup(item, &column.path),
    };
    match column.kind.as_str() {
        "date" | "event-time" => value
            .and_then(Value::as_str)
            .and_then(|t| age(t, now))
            .map(Value::from)
            .unwrap_or(Value::Null),
        "object" => json!(format!(
            "{}/{}",
            value
                .and_then(|o| o["kind"].as_str())
                .unwrap_or("")
                .to_lowercase(),
            value.and_then(|o| o["name"].as_str()).unwrap_or("")
        )),
        "external-ips" => {
            let ips: Vec<&str> = value
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or(i["hostname"].as_str()))
                .collect();
            let pending = item["spec"]["type"] == "LoadBalancer";
            json!(if ips.is_empty() {
                if pending { "<pending>" } else { "<none>" }.to_string()
            } else {
                ips.join(",")
            })
        }
        "ports" => {
            let ports: Vec<String> = value
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    let proto = p["protocol"].as_str().unwrap_or("TCP");
                    match p["nodePort"].as_u64() {
                        Some(node) => format!("{}:{node}/{proto}", p["port"]),
                        None => format!("{}/{proto}", p["port"]),
                    }
                })
                .collect();
            json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            })
        }
        "selector" => {
            let pairs: Vec<String> = value
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            json!(if pairs.is_empty() {
                "<none>".to_string()
            } else {
                pairs.join(",")
            })
        }
        _ => match value {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(s)) => json!(s),
            Some(v @ (Value::Number(_) | Value::Bool(_))) => v.clone(),
            Some(other) => json!(other.to_string()),
        },
    }
}

/// Follows `.a.b[0].c`.
fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = item;
    for part in path.trim_start_matches('.').split('.').filter(|p| !p.is_empty()) {
        let (key, index) = match part.split_once('[') {
            Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        current = current.get(key)?;
        if let Some(i) = index {
            current = current.get(i)?;
        }
    }
    Some(current)
}

/// kubectl-style age ("45s", "3m", "2h", "5d") of an RFC 3339 UTC timestamp.
fn age(timestamp: &str, now: i64) -> Option<String> {
    let then: k8s_openapi::jiff::Timestamp = timestamp.parse().ok()?;
    let secs = (now - then.as_second()).max(0);
    Some(match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_show_external_ips_and_ports() {
        let svc = json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.42.0.200"}, {"ip": "fd00:42::200"}]}}
        });
        let now = "2026-01-01T00:01:30Z"
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
            .as_second();
        let table = render(&[svc], None, "Service", 1, now);
        let cells = &table["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[3], "10.42.0.200,fd00:42::200");
        assert_eq!(cells[4], "80:30080/TCP");
        assert_eq!(cells[5], "90s");
    }
}
