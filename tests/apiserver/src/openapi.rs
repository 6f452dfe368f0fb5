//! Just enough OpenAPI v3 for kubectl: an index of group-versions and, per
//! group-version, the paths of every resource with their operations tagged by
//! `x-kubernetes-group-version-kind`. PATCH, PUT and POST declare the
//! `fieldValidation` query parameter, which tells kubectl to leave validation to the
//! server. Custom resources carry their CRD schema; built-in kinds carry none, so
//! kubectl falls back to its compiled-in types for strategic merge patches.

use serde_json::{Map, Value, json};

use crate::registry::ResourceType;
use crate::store::Store;

/// `/openapi/v3`: where each group-version's document is.
pub fn index(store: &Store) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(store) {
        let key = prefix(&group, &version).trim_start_matches('/').to_string();
        let url = format!("/openapi/v3/{key}?hash={}", store.resource_version());
        paths.insert(key, json!({"serverRelativeURL": url}));
    }
    json!({"paths": paths})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn document(store: &Store, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = store
        .types()
        .filter(|t| t.gr.group == group && t.serves(version))
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for rt in types {
        let gvk = json!([{"group": group, "version": version, "kind": rt.kind}]);
        let operation = |verb: &str, validates: bool| {
            let mut params = vec![json!({"name": "dryRun", "in": "query", "schema": {"type": "string"}})];
            if validates {
                params.push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}));
                params.push(json!({"name": "fieldManager", "in": "query", "schema": {"type": "string"}}));
            }
            json!({
                "operationId": format!("{verb}{}", rt.kind),
                "parameters": params,
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk[0],
            })
        };
        let base = prefix(group, version);
        let collection = if rt.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", rt.gr.resource)
        } else {
            format!("{base}/{}", rt.gr.resource)
        };
        paths.insert(
            collection.clone(),
            json!({"get": operation("list", false), "post": operation("post", true), "delete": operation("deletecollection", false)}),
        );
        let item = json!({
            "get": operation("get", false),
            "put": operation("put", true),
            "patch": operation("patch", true),
            "delete": operation("delete", false),
        });
        paths.insert(format!("{collection}/{{name}}"), item.clone());
        if rt.has_status {
            paths.insert(format!("{collection}/{{name}}/status"), item);
        }
        if let Some(crd_version) = rt.crd_version(version) {
            let mut schema = crd_version["schema"]["openAPIV3Schema"].clone();
            schema["x-kubernetes-group-version-kind"] = gvk;
            schemas.insert(schema_name(rt, version), schema);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn group_versions(store: &Store) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = store
        .types()
        .flat_map(|t| t.versions.iter().map(|v| (t.gr.group.clone(), v.clone())))
        .collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

fn prefix(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

fn schema_name(rt: &ResourceType, version: &str) -> String {
    let reversed: Vec<&str> = rt.gr.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), rt.kind)
}
