//! Authentication and RBAC authorization, switched on with [`crate::Shared::enforce_rbac`].
//!
//! Bearer tokens name users: the admin kubeconfig's token is in `system:masters` (no
//! authorization, as kube-apiserver treats that group), and tokens issued through the
//! TokenRequest subresource (`serviceaccounts/<name>/token`) are their ServiceAccount's,
//! valid while it exists. Requests are then authorized from the Roles, ClusterRoles and
//! bindings in the server's own store, with the semantics of Kubernetes' RBAC
//! authorizer (verbs, API groups, resources and `*/subresource`, resourceNames,
//! nonResourceURLs with a trailing `*`), and refused with kube-apiserver's 403 body.
//!
//! Of the default bootstrap policy only what every authenticated client needs is built
//! in: `system:discovery` and `system:public-info-viewer` (GET on `/api`, `/apis`,
//! `/openapi`, `/version`, the health paths). Aggregated ClusterRoles are not evaluated.

use std::collections::HashMap;

use axum::http::Method;
use serde_json::Value;

use crate::error::ApiError;
use crate::registry::{GroupResource, RBAC};
use crate::store::Store;

/// The admin kubeconfig's token (see [`crate::kubeconfig`]).
pub const ADMIN_TOKEN: &str = "ferrolb-test";

/// Who sent a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// User name, e.g. `system:serviceaccount:ferrolb-system:ferrolb-speaker`.
    pub name: String,
    /// Groups, e.g. `system:serviceaccounts`.
    pub groups: Vec<String>,
}

impl User {
    /// The user of a ServiceAccount's tokens.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }

    fn admin() -> Self {
        Self {
            name: "ferrolb-test-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// The ServiceAccount behind this user, if it is one: (namespace, name).
    fn service_account_ref(&self) -> Option<(&str, &str)> {
        self.name.strip_prefix("system:serviceaccount:")?.split_once(':')
    }
}

/// Tokens issued so far, by token.
#[derive(Default)]
pub struct Tokens {
    issued: HashMap<String, User>,
    serial: u64,
}

impl Tokens {
    /// A new token for the ServiceAccount `namespace/name`.
    pub fn issue(&mut self, namespace: &str, name: &str) -> String {
        self.serial += 1;
        // Not a secret worth guarding: the server is a test fixture on loopback.
        let token = format!("ferrolb-sa.{namespace}.{name}.{:08x}", self.serial);
        self.issued
            .insert(token.clone(), User::service_account(namespace, name));
        token
    }

    /// The user a request's `Authorization` header names; 401 when it names none.
    pub fn authenticate(&self, store: &Store, authorization: Option<&str>) -> Result<User, ApiError> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthorized)?;
        if token == ADMIN_TOKEN {
            return Ok(User::admin());
        }
        let user = self.issued.get(token).ok_or_else(unauthorized)?;
        // A token dies with its ServiceAccount.
        let (namespace, name) = user.service_account_ref().ok_or_else(unauthorized)?;
        store
            .get(&service_accounts(), namespace, name)
            .map_err(|_| unauthorized())?;
        Ok(user.clone())
    }
}

fn service_accounts() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "serviceaccounts".into(),
    }
}

fn unauthorized() -> ApiError {
    ApiError {
        code: 401,
        reason: "Unauthorized",
        message: "Unauthorized".into(),
        details: None,
    }
}

/// What a request asks to do, in RBAC's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`;
    /// for non-resource paths the lower-case HTTP method.
    pub verb: String,
    /// The path, for non-resource requests.
    pub path: String,
    /// Set for requests on an API resource.
    pub resource: Option<ResourceAttributes>,
}

/// The resource part of [`Attributes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceAttributes {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Subresource, e.g. `status`, or "".
    pub subresource: String,
    /// Namespace of a namespaced request.
    pub namespace: Option<String>,
    /// Object name, when one is named.
    pub name: Option<String>,
}

impl Attributes {
    /// Reads the attributes off a request line, as kube-apiserver's request-info resolver.
    pub fn of(method: &Method, path: &str, query: &HashMap<String, String>) -> Self {
        let segments: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let rest = match segments.as_slice() {
            ["api", "v1", rest @ ..] if !rest.is_empty() => Some(("", rest)),
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => Some((*group, rest)),
            _ => None,
        };
        let Some((group, rest)) = rest else {
            return Self {
                verb: method.as_str().to_lowercase(),
                path: path.to_string(),
                resource: None,
            };
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, more @ ..]
                if !more.is_empty() && more != ["status"] && more != ["finalize"] =>
            {
                (Some(ns.to_string()), more)
            }
            other => (None, other),
        };
        let (resource, name, subresource) = match rest {
            [resource] => (*resource, None, ""),
            [resource, name] => (*resource, Some(name.to_string()), ""),
            [resource, name, sub, ..] => (*resource, Some(name.to_string()), *sub),
            [] => ("", None, ""),
        };
        let watching = query.get("watch").is_some_and(|v| v == "true" || v == "1");
        let verb = match (method.as_str(), &name) {
            ("GET", _) if watching => "watch",
            ("GET", Some(_)) => "get",
            ("GET", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", Some(_)) => "delete",
            ("DELETE", None) => "deletecollection",
            (other, _) => return Self::non_resource(other, path),
        };
        Self {
            verb: verb.into(),
            path: path.to_string(),
            resource: Some(ResourceAttributes {
                group: group.into(),
                resource: resource.into(),
                subresource: subresource.into(),
                namespace,
                name,
            }),
        }
    }

    fn non_resource(method: &str, path: &str) -> Self {
        Self {
            verb: method.to_lowercase(),
            path: path.into(),
            resource: None,
        }
    }
}

/// Paths every authenticated user may GET (the bootstrap discovery roles).
fn discovery_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    [
        "/api", "/apis", "/openapi", "/version", "/healthz", "/readyz", "/livez",
    ]
    .iter()
    .any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
}

/// Whether RBAC lets `user` do what `attributes` describe.
pub fn allowed(store: &Store, user: &User, attributes: &Attributes) -> bool {
    if user.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    if attributes.resource.is_none() && attributes.verb == "get" && discovery_path(&attributes.path) {
        return true;
    }
    let rbac = |resource: &str| GroupResource {
        group: RBAC.into(),
        resource: resource.into(),
    };
    let rules_of = |role_ref: &Value, namespace: &str| -> Vec<Value> {
        let (kind, name) = (
            role_ref["kind"].as_str().unwrap_or(""),
            role_ref["name"].as_str().unwrap_or(""),
        );
        let role = match kind {
            "ClusterRole" => store.get(&rbac("clusterroles"), "", name),
            "Role" => store.get(&rbac("roles"), namespace, name),
            _ => return Vec::new(),
        };
        role.ok()
            .and_then(|r| r["rules"].as_array().cloned())
            .unwrap_or_default()
    };
    let grants = |binding: &Value, namespace: &str| {
        binds(binding, user)
            && rules_of(&binding["roleRef"], namespace)
                .iter()
                .any(|rule| rule_allows(rule, attributes))
    };
    if store
        .list(&rbac("clusterrolebindings"), None, |b| binds(b, user))
        .iter()
        .any(|b| grants(b, ""))
    {
        return true;
    }
    match attributes.resource.as_ref().and_then(|r| r.namespace.as_deref()) {
        Some(namespace) => store
            .list(&rbac("rolebindings"), Some(namespace), |b| binds(b, user))
            .iter()
            .any(|b| grants(b, namespace)),
        None => false,
    }
}

/// Whether one of a binding's subjects is `user`.
fn binds(binding: &Value, user: &User) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|subject| {
            let name = subject["name"].as_str().unwrap_or("");
            match subject["kind"].as_str() {
                Some("ServiceAccount") => {
                    user.name
                        == format!(
                            "system:serviceaccount:{}:{name}",
                            subject["namespace"].as_str().unwrap_or("")
                        )
                }
                Some("User") => user.name == name,
                Some("Group") => user.groups.iter().any(|g| g == name),
                _ => false,
            }
        })
}

/// Whether one PolicyRule covers the request.
fn rule_allows(rule: &Value, attributes: &Attributes) -> bool {
    let list = |field: &str| -> Vec<&str> {
        rule[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    let verbs = list("verbs");
    if !verbs.iter().any(|v| *v == "*" || *v == attributes.verb) {
        return false;
    }
    let Some(request) = &attributes.resource else {
        return list("nonResourceURLs").iter().any(|url| {
            *url == "*"
                || *url == attributes.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attributes.path.starts_with(prefix))
        });
    };
    if !list("apiGroups").iter().any(|g| *g == "*" || *g == request.group) {
        return false;
    }
    let combined = if request.subresource.is_empty() {
        request.resource.clone()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    let resource_matches = list("resources").iter().any(|r| {
        *r == "*"
            || *r == combined
            || (!request.subresource.is_empty() && r.strip_prefix("*/") == Some(request.subresource.as_str()))
    });
    let names = list("resourceNames");
    resource_matches
        && (names.is_empty() || request.name.as_deref().is_some_and(|name| names.contains(&name)))
}

/// kube-apiserver's 403 for a denied request.
pub fn forbidden(user: &User, attributes: &Attributes) -> ApiError {
    let Some(request) = &attributes.resource else {
        return ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "forbidden: User {:?} cannot {} path {:?}",
                user.name, attributes.verb, attributes.path
            ),
            details: None,
        };
    };
    let qualified = if request.group.is_empty() {
        request.resource.clone()
    } else {
        format!("{}.{}", request.resource, request.group)
    };
    let subject = match &request.name {
        Some(name) => format!("{qualified} {name:?}"),
        None => qualified,
    };
    let resource = if request.subresource.is_empty() {
        request.resource.clone()
    } else {
        format!("{}/{}", request.resource, request.subresource)
    };
    let scope = match &request.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    let mut details = serde_json::json!({"group": request.group, "kind": request.resource});
    if let Some(name) = &request.name {
        details["name"] = Value::from(name.as_str());
    }
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!(
            "{subject} is forbidden: User {:?} cannot {} resource {resource:?} in API group {:?} {scope}",
            user.name, attributes.verb, request.group
        ),
        details: Some(details),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with(objects: &[(&str, &str, Value)]) -> Store {
        let mut store = Store::new(100, Box::new(|| "2026-01-01T00:00:00Z".into()));
        for (resource, namespace, object) in objects {
            let gr = GroupResource {
                group: RBAC.into(),
                resource: (*resource).into(),
            };
            store
                .create(&gr, namespace, object.clone())
                .expect("valid RBAC object");
        }
        store
    }

    fn request(method: Method, path: &str) -> Attributes {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let query = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Attributes::of(&method, path, &query)
    }

    fn speaker() -> User {
        User::service_account("ferrolb-system", "speaker")
    }

    fn sa_subject() -> Value {
        json!([{"kind": "ServiceAccount", "name": "speaker", "namespace": "ferrolb-system"}])
    }

    #[test]
    fn request_attributes_like_kube_apiserver() {
        let a = request(Method::GET, "/api/v1/namespaces/demo/services?watch=true");
        assert_eq!(a.verb, "watch");
        let r = a.resource.unwrap();
        assert_eq!(
            (r.group.as_str(), r.resource.as_str(), r.namespace.as_deref()),
            ("", "services", Some("demo"))
        );
        let a = request(
            Method::PATCH,
            "/apis/ferrolb.io/v1beta1/namespaces/x/ipaddresspools/p/status",
        );
        let r = a.resource.unwrap();
        assert_eq!(
            (a.verb.as_str(), r.subresource.as_str(), r.name.as_deref()),
            ("patch", "status", Some("p"))
        );
        let a = request(Method::POST, "/api/v1/namespaces/x/serviceaccounts/sa/token");
        assert_eq!(
            (a.verb.as_str(), a.resource.unwrap().subresource.as_str()),
            ("create", "token")
        );
        let a = request(Method::GET, "/api/v1/namespaces/demo");
        let r = a.resource.unwrap();
        assert_eq!(
            (
                a.verb.as_str(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.namespace
            ),
            ("get", "namespaces", Some("demo"), None)
        );
        assert_eq!(
            request(Method::DELETE, "/api/v1/namespaces/d/pods").verb,
            "deletecollection"
        );
        assert!(request(Method::GET, "/metrics").resource.is_none());
    }

    #[test]
    fn cluster_role_binding_grants_everywhere_role_binding_in_its_namespace() {
        let store = store_with(&[
            (
                "clusterroles",
                "",
                json!({"metadata": {"name": "read-services"}, "rules": [
                {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}]}),
            ),
            (
                "clusterrolebindings",
                "",
                json!({"metadata": {"name": "b"}, "subjects": sa_subject(),
                "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "read-services"}}),
            ),
            (
                "roles",
                "ferrolb-system",
                json!({"metadata": {"name": "leases"}, "rules": [
                {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]}),
            ),
            (
                "rolebindings",
                "ferrolb-system",
                json!({"metadata": {"name": "b"}, "subjects": sa_subject(),
                "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "leases"}}),
            ),
        ]);
        let user = speaker();
        let can = |m: Method, p: &str| allowed(&store, &user, &request(m, p));
        assert!(can(Method::GET, "/api/v1/services?watch=1"));
        assert!(can(Method::GET, "/api/v1/namespaces/any/services/web"));
        assert!(!can(Method::PATCH, "/api/v1/namespaces/any/services/web/status"));
        assert!(can(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/l"
        ));
        assert!(!can(
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/other/leases/l"
        ));
        assert!(!can(Method::GET, "/apis/coordination.k8s.io/v1/leases"));
        assert!(
            can(Method::GET, "/apis"),
            "discovery is open to every authenticated user"
        );
        assert!(!can(Method::GET, "/metrics"));
        let other = User::service_account("ferrolb-system", "controller");
        assert!(!allowed(
            &store,
            &other,
            &request(Method::GET, "/api/v1/services")
        ));
        assert!(allowed(
            &store,
            &User::admin(),
            &request(Method::DELETE, "/api/v1/nodes/n1")
        ));
    }

    #[test]
    fn subresources_resource_names_groups_and_paths() {
        let rule = |r: Value| {
            let store = store_with(&[
                (
                    "clusterroles",
                    "",
                    json!({"metadata": {"name": "r"}, "rules": [r]}),
                ),
                (
                    "clusterrolebindings",
                    "",
                    json!({"metadata": {"name": "b"},
                    "subjects": [{"kind": "Group", "name": "system:serviceaccounts:ferrolb-system"}],
                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "r"}}),
                ),
            ]);
            move |m: Method, p: &str| allowed(&store, &speaker(), &request(m, p))
        };
        let can = rule(json!({"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]}));
        assert!(can(Method::PATCH, "/api/v1/namespaces/d/services/web/status"));
        assert!(!can(Method::PATCH, "/api/v1/namespaces/d/services/web"));
        let can = rule(json!({"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["update"]}));
        assert!(can(
            Method::PUT,
            "/apis/apps/v1/namespaces/d/deployments/x/status"
        ));
        assert!(!can(Method::PUT, "/apis/apps/v1/namespaces/d/deployments/x"));
        let can = rule(
            json!({"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["key"], "verbs": ["get", "create"]}),
        );
        assert!(can(Method::GET, "/api/v1/namespaces/d/secrets/key"));
        assert!(!can(Method::GET, "/api/v1/namespaces/d/secrets/other"));
        assert!(
            !can(Method::GET, "/api/v1/namespaces/d/secrets"),
            "a list names no object"
        );
        assert!(
            !can(Method::POST, "/api/v1/namespaces/d/secrets"),
            "a create names no object"
        );
        let can = rule(json!({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["get"]}));
        assert!(can(Method::GET, "/apis/apps/v1/namespaces/d/daemonsets/x"));
        assert!(!can(Method::GET, "/api/v1/namespaces/d/pods/x"));
        let can = rule(json!({"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}));
        assert!(can(Method::GET, "/metrics") && can(Method::GET, "/logs/a/b"));
        assert!(!can(Method::POST, "/metrics") && !can(Method::GET, "/metricsx"));
    }

    #[test]
    fn denials_read_like_kube_apiserver() {
        let user = speaker();
        let err = forbidden(&user, &request(Method::GET, "/api/v1/services"));
        assert_eq!(
            err.message,
            "services is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot list resource \"services\" in API group \"\" at the cluster scope"
        );
        let err = forbidden(
            &user,
            &request(
                Method::PATCH,
                "/apis/coordination.k8s.io/v1/namespaces/f/leases/l",
            ),
        );
        assert_eq!(
            err.message,
            "leases.coordination.k8s.io \"l\" is forbidden: User \"system:serviceaccount:ferrolb-system:speaker\" cannot patch resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"f\""
        );
        assert_eq!((err.code, err.reason), (403, "Forbidden"));
    }

    #[test]
    fn tokens_name_their_service_account_while_it_exists() {
        let mut store = store_with(&[]);
        let mut tokens = Tokens::default();
        let token = tokens.issue("ferrolb-system", "speaker");
        let header = format!("Bearer {token}");
        assert_eq!(tokens.authenticate(&store, Some(&header)).unwrap_err().code, 401);
        store
            .create(
                &service_accounts(),
                "ferrolb-system",
                json!({"metadata": {"name": "speaker"}}),
            )
            .unwrap();
        assert_eq!(tokens.authenticate(&store, Some(&header)).unwrap(), speaker());
        assert_eq!(
            tokens.authenticate(&store, Some("Bearer nope")).unwrap_err().code,
            401
        );
        assert_eq!(tokens.authenticate(&store, None).unwrap_err().code, 401);
        assert_eq!(
            tokens.authenticate(&store, Some("Bearer ferrolb-test")).unwrap(),
            User::admin()
        );
    }
}
