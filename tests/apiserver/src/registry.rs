//! The resource types the server serves: the built-in kinds FerroLB needs, plus one
//! entry per version of every CustomResourceDefinition created.

use serde_json::{Value, json};

/// A group and plural resource name: the storage identity of a type, whatever version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group; empty for the core group.
    pub group: String,
    /// Plural resource name, e.g. `services`.
    pub resource: String,
}

/// One served type.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceType {
    /// Group and plural name.
    pub gr: GroupResource,
    /// Versions served, preferred (storage) first.
    pub versions: Vec<String>,
    /// Kind, e.g. `Service`.
    pub kind: String,
    /// Singular name, e.g. `service`.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Whether the type has a status subresource.
    pub has_status: bool,
    /// Categories (`kubectl get all`-style groupings).
    pub categories: Vec<String>,
    /// The CRD's version entries (schema, printer columns), for custom resources.
    pub crd_versions: Vec<Value>,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        resource: &str,
        kind: &str,
        namespaced: bool,
        short: &[&str],
        status: bool,
    ) -> Self {
        Self {
            gr: GroupResource {
                group: group.into(),
                resource: resource.into(),
            },
            versions: vec![version.into()],
            kind: kind.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            has_status: status,
            categories: Vec::new(),
            crd_versions: Vec::new(),
        }
    }

    /// `group/version` (or `version` for the core group) for a served version.
    pub fn api_version(&self, version: &str) -> String {
        if self.gr.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.gr.group)
        }
    }

    /// The CRD's entry for `version`, for custom resources.
    pub fn crd_version(&self, version: &str) -> Option<&Value> {
        self.crd_versions.iter().find(|v| v["name"] == version)
    }

    /// Whether this type is served at `version`.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The type described by a CustomResourceDefinition object, if it is well formed.
    pub fn from_crd(crd: &Value) -> Option<Self> {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let served: Vec<&Value> = spec["versions"]
            .as_array()?
            .iter()
            .filter(|v| v["served"].as_bool().unwrap_or(true))
            .collect();
        let mut versions: Vec<String> = served
            .iter()
            .filter_map(|v| v["name"].as_str().map(String::from))
            .collect();
        let storage = served.iter().find(|v| v["storage"].as_bool() == Some(true))?["name"]
            .as_str()?
            .to_string();
        versions.retain(|v| *v != storage);
        versions.insert(0, storage);
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        };
        Some(Self {
            gr: GroupResource {
                group: spec["group"].as_str()?.into(),
                resource: names["plural"].as_str()?.into(),
            },
            kind: names["kind"].as_str()?.into(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| names["kind"].as_str().unwrap_or_default().to_lowercase()),
            namespaced: spec["scope"].as_str() == Some("Namespaced"),
            short_names: strings(&names["shortNames"]),
            has_status: served.iter().any(|v| v["subresources"]["status"].is_object()),
            categories: strings(&names["categories"]),
            crd_versions: served.iter().map(|v| (*v).clone()).collect(),
            versions,
        })
    }

    /// This type's entries in an APIResourceList (`/apis/{group}/{version}`).
    pub fn discovery_entries(&self) -> Vec<Value> {
        let verbs = [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ];
        let mut entries = vec![json!({
            "name": self.gr.resource,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        if self.gr.group.is_empty() && self.gr.resource == "serviceaccounts" {
            entries.push(json!({
                "name": "serviceaccounts/token",
                "singularName": "",
                "namespaced": true,
                "group": "authentication.k8s.io",
                "version": "v1",
                "kind": "TokenRequest",
                "verbs": ["create"],
            }));
        }
        if self.has_status {
            entries.push(json!({
                "name": format!("{}/status", self.gr.resource),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
        entries
    }
}

/// The RBAC API group.
pub const RBAC: &str = "rbac.authorization.k8s.io";

/// The built-in kinds: what FerroLB, its Helm chart, kubectl and the client libraries touch.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"], true),
        ResourceType::builtin("", "v1", "nodes", "Node", false, &["no"], true),
        ResourceType::builtin("", "v1", "services", "Service", true, &["svc"], true),
        ResourceType::builtin("", "v1", "secrets", "Secret", true, &[], false),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], false),
        ResourceType::builtin("", "v1", "events", "Event", true, &["ev"], false),
        ResourceType::builtin("", "v1", "pods", "Pod", true, &["po"], true),
        ResourceType::builtin(
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            "EndpointSlice",
            true,
            &[],
            false,
        ),
        ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"], false),
        ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[], false),
        ResourceType::builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            false,
        ),
        ResourceType::builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"], true),
        ResourceType::builtin("apps", "v1", "daemonsets", "DaemonSet", true, &["ds"], true),
        ResourceType::builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
            true,
        ),
        ResourceType::builtin(RBAC, "v1", "roles", "Role", true, &[], false),
        ResourceType::builtin(RBAC, "v1", "rolebindings", "RoleBinding", true, &[], false),
        ResourceType::builtin(RBAC, "v1", "clusterroles", "ClusterRole", false, &[], false),
        ResourceType::builtin(
            RBAC,
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
            false,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
        ),
    ]
}
