//! The HTTP shell around [`Store`]: path routing, discovery documents, verbs, and
//! watch streams (replay from the store's history, then live events).
//!
//! ```text
//!  client ──HTTP──▶ handle() ──lock──▶ Store (pure) ──new events──▶ broadcast
//!                      │                                              │
//!                      └── watch: replay history, then ◀──────────────┘ per-watch task
//! ```

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};

use crate::auth::{Attributes, Tokens};
use crate::error::ApiError;
use crate::events;
use crate::registry::{GroupResource, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, Patch, Store, Subresource};

/// What the Kubernetes version endpoint reports.
const GIT_VERSION: &str = "v1.35.0-ferrolb-testserver";

/// State shared by every request.
pub struct Shared {
    store: Mutex<Store>,
    events: broadcast::Sender<Arc<Event>>,
    /// Bumped to end every open watch (a fault, or a restart).
    watch_epoch: watch::Sender<u64>,
    /// Requests still to fail, and with which HTTP code.
    failing: Mutex<(u32, u16)>,
    /// While true, requests hang before they are handled.
    paused: watch::Sender<bool>,
    /// Watches answered with 410 Gone so far.
    expired: std::sync::atomic::AtomicU64,
    /// Whether requests are authenticated and authorized (see [`crate::auth`]).
    rbac: std::sync::atomic::AtomicBool,
    tokens: Mutex<Tokens>,
    /// The messages of the 403s answered so far.
    denials: Mutex<Vec<String>>,
}

impl Shared {
    /// Shared state around a store.
    pub fn new(store: Store) -> Arc<Self> {
        let (events, _) = broadcast::channel(65_536);
        let (watch_epoch, _) = watch::channel(0);
        let (paused, _) = watch::channel(false);
        Arc::new(Self {
            store: Mutex::new(store),
            events,
            watch_epoch,
            failing: Mutex::new((0, 500)),
            paused,
            expired: Default::default(),
            rbac: Default::default(),
            tokens: Default::default(),
            denials: Default::default(),
        })
    }

    /// How many watches were answered with 410 Gone (clients must then relist).
    pub fn expired_watches(&self) -> u64 {
        self.expired.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// From now on, authenticate every request by its bearer token and authorize it
    /// with the RBAC objects in the store (`false`: accept any request, the default).
    pub fn enforce_rbac(&self, on: bool) {
        self.rbac.store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The messages of every 403 answered so far, oldest first.
    pub fn denials(&self) -> Vec<String> {
        self.denials.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A token for the ServiceAccount `namespace/name` (what the TokenRequest
    /// subresource issues), valid while the ServiceAccount exists.
    pub fn issue_token(&self, namespace: &str, name: &str) -> String {
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .issue(namespace, name)
    }

    /// 401 or 403 for a request RBAC does not let through, when RBAC is enforced.
    fn authorize(
        &self,
        method: &Method,
        path: &str,
        query: &HashMap<String, String>,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        if !self.rbac.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let store = self.store();
        let authorization = headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok());
        let user = self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .authenticate(&store, authorization)?;
        let attributes = Attributes::of(method, path, query);
        if crate::auth::allowed(&store, &user, &attributes) {
            return Ok(());
        }
        let denied = crate::auth::forbidden(&user, &attributes);
        self.denials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(denied.message.clone());
        Err(denied)
    }

    /// Fails the next `count` requests with HTTP `code` (500 and 429 are the useful ones).
    pub fn fail_next(&self, count: u32, code: u16) {
        *self.failing.lock().unwrap_or_else(|p| p.into_inner()) = (count, code);
    }

    /// Makes requests hang (`true`) until called again with `false`.
    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    /// Applies the faults to one request: waits while paused, then maybe fails it.
    async fn faults(&self) -> Option<ApiError> {
        let mut paused = self.paused.subscribe();
        while *paused.borrow_and_update() {
            if paused.changed().await.is_err() {
                break;
            }
        }
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        if failing.0 == 0 {
            return None;
        }
        failing.0 -= 1;
        let reason = if failing.1 == 429 {
            "TooManyRequests"
        } else {
            "InternalError"
        };
        Some(ApiError {
            code: failing.1,
            reason,
            message: "injected fault".into(),
            details: None,
        })
    }

    /// The admin endpoint `POST /_testserver/faults`, body one of `{"failNext": N,
    /// "code": C}`, `{"pause": bool}`, `{"closeWatches": true}`, `{"compact": keep}`.
    fn admin(&self, body: &[u8]) -> Result<Value, ApiError> {
        let request: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        if let Some(count) = request["failNext"].as_u64() {
            self.fail_next(count as u32, request["code"].as_u64().unwrap_or(500) as u16);
        }
        if let Some(paused) = request["pause"].as_bool() {
            self.pause(paused);
        }
        if request["closeWatches"].as_bool() == Some(true) {
            self.close_watches();
        }
        if let Some(keep) = request["compact"].as_u64() {
            self.store().compact(keep as usize);
        }
        Ok(json!({"ok": true}))
    }

    /// The store, locked.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends every open watch; clients re-watch from their last resourceVersion.
    pub fn close_watches(&self) {
        self.watch_epoch.send_modify(|epoch| *epoch += 1);
    }

    /// Runs a write against the store and publishes the events it produced, in order
    /// (tests seed state through it without HTTP).
    pub fn write<T>(&self, op: impl FnOnce(&mut Store) -> Result<T, ApiError>) -> Result<T, ApiError> {
        let mut store = self.store();
        let before = store.resource_version();
        let result = op(&mut store);
        for event in store.events_after(before) {
            // No receiver is fine: nobody is watching.
            let _ = self.events.send(Arc::new(event));
        }
        result
    }
}

/// The router serving the Kubernetes API from `shared`.
pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if uri.path() == "/_testserver/faults" && method == Method::POST {
        return match shared.admin(&body) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(err) => json_response(StatusCode::BAD_REQUEST, &err.status()),
        };
    }
    if uri.path() == "/_testserver/denials" && method == Method::GET {
        return json_response(StatusCode::OK, &json!({ "denials": shared.denials() }));
    }
    if let Some(err) = shared.faults().await {
        let code = StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(code, &err.status());
        if err.code == 429 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        return response;
    }
    if let Err(err) = shared.authorize(&method, uri.path(), &query, &headers) {
        return json_response(
            StatusCode::from_u16(err.code).unwrap_or(StatusCode::FORBIDDEN),
            &err.status(),
        );
    }
    let local = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    match route(&shared, &method, uri.path(), &query, &headers, &body, &local) {
        Ok(Reply::Json(code, value)) => json_response(code, &value),
        Ok(Reply::Watch(request)) => watch_response(shared, *request),
        Err(err) => json_response(
            StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &err.status(),
        ),
    }
}

enum Reply {
    Json(StatusCode, Value),
    Watch(Box<WatchRequest>),
}

fn ok(value: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(StatusCode::OK, value))
}

fn json_response(code: StatusCode, value: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// A request for one served type, with namespace, name and subresource taken from the path.
struct Target {
    rt: ResourceType,
    /// Where objects of this type are kept: the type itself, except for views of
    /// another type's objects (`events.k8s.io` Events are core Events).
    storage: GroupResource,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    sub: Subresource,
}

fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    host: &str,
) -> Result<Reply, ApiError> {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let store = || shared.store();
    match segments.as_slice() {
        ["version"] => ok(json!({
            "major": "1", "minor": "35", "gitVersion": GIT_VERSION, "platform": "linux/amd64",
            "goVersion": "n/a", "compiler": "rustc", "gitCommit": "", "gitTreeState": "clean", "buildDate": ""
        })),
        ["healthz"] | ["readyz"] | ["livez"] => ok(json!("ok")),
        ["api"] => ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}]
        })),
        ["apis"] => ok(group_list(&store())),
        ["openapi", "v3"] => ok(crate::openapi::index(&store())),
        ["openapi", "v3", "api", version] => crate::openapi::document(&store(), "", version)
            .map(ok)
            .unwrap_or_else(|| Err(ApiError::no_such_path(path))),
        ["openapi", "v3", "apis", group, version] => crate::openapi::document(&store(), group, version)
            .map(ok)
            .unwrap_or_else(|| Err(ApiError::no_such_path(path))),
        ["api", "v1"] => ok(resource_list(&store(), "", "v1")),
        ["apis", group] => {
            let list = group_list(&store());
            let found = list["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|g| g["name"] == *group)
                .cloned();
            found.map(ok).unwrap_or_else(|| Err(ApiError::no_such_path(path)))
        }
        ["apis", group, version] => {
            let list = resource_list(&store(), group, version);
            if list["resources"].as_array().is_none_or(Vec::is_empty) {
                return Err(ApiError::no_such_path(path));
            }
            ok(list)
        }
        ["api", "v1", rest @ ..] => {
            resource_request(shared, method, "", "v1", rest, query, headers, body, path)
        }
        ["apis", group, version, rest @ ..] => {
            resource_request(shared, method, group, version, rest, query, headers, body, path)
        }
        _ => Err(ApiError::no_such_path(path)),
    }
}

fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rt in store.types().filter(|t| !t.gr.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == rt.gr.group) {
            Some((_, versions)) => {
                for v in &rt.versions {
                    if !versions.contains(v) {
                        versions.push(v.clone());
                    }
                }
            }
            None => groups.push((rt.gr.group.clone(), rt.versions.clone())),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(name, versions)| {
            let entries: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                .collect();
            json!({"name": name, "versions": entries, "preferredVersion": entries[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = store
        .types()
        .filter(|t| t.gr.group == group && t.serves(version))
        .flat_map(ResourceType::discovery_entries)
        .collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    shared: &Shared,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    path: &str,
) -> Result<Reply, ApiError> {
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, more @ ..] if !(more.is_empty() && *resource == "status") => (
            Some(ns.to_string()),
            std::iter::once(*resource)
                .chain(more.iter().copied())
                .collect::<Vec<_>>(),
        ),
        other => (None, other.to_vec()),
    };
    let (resource, name, sub) = match rest.as_slice() {
        [resource] => (*resource, None, Subresource::Main),
        [resource, name] => (*resource, Some(name.to_string()), Subresource::Main),
        [resource, name, "status"] => (*resource, Some(name.to_string()), Subresource::Status),
        ["serviceaccounts", name, "token"] if group.is_empty() && *method == Method::POST => {
            let namespace = namespace.ok_or_else(|| ApiError::no_such_path(path))?;
            return token_request(shared, &namespace, name, body, headers)
                .map(|v| Reply::Json(StatusCode::CREATED, v));
        }
        _ => return Err(ApiError::no_such_path(path)),
    };
    let rt = shared
        .store()
        .resource_type(group, version, resource)
        .cloned()
        .ok_or_else(|| ApiError::no_such_path(path))?;
    if sub == Subresource::Status && !rt.has_status {
        return Err(ApiError::no_such_path(path));
    }
    if namespace.is_some() && !rt.namespaced {
        return Err(ApiError::no_such_path(path));
    }
    let storage = if events::is_events_view(&rt.gr) {
        events::core()
    } else {
        rt.gr.clone()
    };
    let target = Target {
        rt,
        storage,
        version: version.to_string(),
        namespace,
        name,
        sub,
    };
    let truthy = |key: &str| query.get(key).is_some_and(|v| v == "1" || v == "true");
    match (method.clone(), &target.name) {
        (Method::GET, Some(name)) => {
            let object = shared.store().get(&target.storage, target.ns(), name)?;
            if wants_table(headers) {
                return ok(target.table(&[object], shared.store().resource_version()));
            }
            ok(target.present(object))
        }
        (Method::GET, None) if truthy("watch") => {
            Ok(Reply::Watch(Box::new(WatchRequest::new(target, query)?)))
        }
        (Method::GET, None) => list(shared, &target, query, wants_table(headers)),
        (Method::POST, None) => {
            let object = target.admit(parse_body(body, headers)?);
            let created = shared.write(|s| s.create(&target.storage, target.ns(), object))?;
            Ok(Reply::Json(StatusCode::CREATED, target.present(created)))
        }
        (Method::PUT, Some(name)) => {
            let object = target.admit(parse_body(body, headers)?);
            let updated =
                shared.write(|s| s.update(&target.storage, target.ns(), name, object, target.sub))?;
            ok(target.present(updated))
        }
        (Method::PATCH, Some(name)) => {
            let patch = parse_patch(body, headers, query)?;
            let patched = if target.storage == target.rt.gr {
                shared.write(|s| s.patch(&target.storage, target.ns(), name, patch, target.sub))?
            } else {
                // A view's patch applies to the object as the view shows it.
                shared.write(|s| {
                    let mut viewed = target.present(s.get(&target.storage, target.ns(), name)?);
                    patch.apply(&mut viewed, name)?;
                    s.update(
                        &target.storage,
                        target.ns(),
                        name,
                        target.admit(viewed),
                        target.sub,
                    )
                })?
            };
            ok(target.present(patched))
        }
        (Method::DELETE, Some(name)) => {
            let deleted = shared.write(|s| s.delete(&target.storage, target.ns(), name))?;
            ok(target.present(deleted))
        }
        (Method::DELETE, None) => {
            let selector = Filter::from_query(query)?;
            let deleted = shared.write(|s| {
                let doomed = s.list(&target.storage, target.namespace.as_deref(), |o| {
                    selector.matches(o)
                });
                doomed
                    .iter()
                    .map(|o| {
                        let ns = o
                            .pointer("/metadata/namespace")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let name = o
                            .pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        s.delete(&target.storage, ns, name)
                    })
                    .collect::<Result<Vec<_>, _>>()
            })?;
            ok(target.list_document(deleted, shared.store().resource_version(), None))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {path}"
        ))),
    }
}

impl Target {
    fn ns(&self) -> &str {
        if self.rt.namespaced {
            self.namespace.as_deref().unwrap_or("")
        } else {
            ""
        }
    }

    /// An object as served at the requested version.
    fn present(&self, mut object: Value) -> Value {
        if events::is_events_view(&self.rt.gr) {
            object = events::from_core(object);
        }
        object["apiVersion"] = json!(self.rt.api_version(&self.version));
        object
    }

    /// A written object in its stored form.
    fn admit(&self, object: Value) -> Value {
        if events::is_events_view(&self.rt.gr) {
            events::to_core(object)
        } else {
            object
        }
    }

    fn table(&self, items: &[Value], rv: u64) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        crate::table::render(items, self.rt.crd_version(&self.version), &self.rt.kind, rv, now)
    }

    fn list_document(&self, items: Vec<Value>, rv: u64, next: Option<String>) -> Value {
        let items: Vec<Value> = items.into_iter().map(|o| self.present(o)).collect();
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if let Some(next) = next {
            metadata["continue"] = json!(next);
        }
        json!({
            "apiVersion": self.rt.api_version(&self.version),
            "kind": format!("{}List", self.rt.kind),
            "metadata": metadata,
            "items": items,
        })
    }
}

/// `POST …/serviceaccounts/{name}/token`: a TokenRequest answered with a token for the
/// ServiceAccount, which must exist.
fn token_request(
    shared: &Shared,
    namespace: &str,
    name: &str,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<Value, ApiError> {
    let request = if body.is_empty() {
        json!({})
    } else {
        parse_body(body, headers)?
    };
    let accounts = GroupResource {
        group: String::new(),
        resource: "serviceaccounts".into(),
    };
    shared.store().get(&accounts, namespace, name)?;
    let token = shared.issue_token(namespace, name);
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 + seconds)
        .unwrap_or(0);
    let expires = k8s_openapi::jiff::Timestamp::from_second(expires)
        .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    Ok(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": crate::now_rfc3339()},
        "spec": {
            "audiences": request.pointer("/spec/audiences").cloned().unwrap_or(json!([])),
            "expirationSeconds": seconds,
            "boundObjectRef": request.pointer("/spec/boundObjectRef").cloned().unwrap_or(Value::Null),
        },
        "status": {"token": token, "expirationTimestamp": expires},
    }))
}

/// Label and field selectors of a list or watch.
struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        Ok(Self {
            labels: LabelSelector::parse(query.get("labelSelector").map(String::as_str).unwrap_or(""))?,
            fields: FieldSelector::parse(query.get("fieldSelector").map(String::as_str).unwrap_or(""))?,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        self.labels.matches(&object["metadata"]["labels"]) && self.fields.matches(object)
    }
}

fn list(
    shared: &Shared,
    target: &Target,
    query: &HashMap<String, String>,
    table: bool,
) -> Result<Reply, ApiError> {
    let filter = Filter::from_query(query)?;
    let limit: usize = match query.get("limit") {
        Some(l) => l
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    // The continue token names the key after which the next page starts.
    let after = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => Some(decode_continue(token)?),
        None => None,
    };
    let (items, rv, next) = {
        let store = shared.store();
        let (items, last) = store.list_page(
            &target.storage,
            target.namespace.as_deref(),
            |o| filter.matches(o),
            after.as_ref().map(|(_, key)| key),
            limit,
        );
        // Every page reports the first page's resourceVersion, so that a watch started
        // from it misses no change made while the pages were read (Kubernetes serves a
        // snapshot; here later pages may show newer objects, which the watch then
        // replays — the client converges either way).
        let rv = after
            .as_ref()
            .map_or_else(|| store.resource_version(), |(rv, _)| *rv);
        (items, rv, last.map(|key| encode_continue(rv, &key)))
    };
    if table {
        let mut table = target.table(&items, rv);
        if let Some(next) = next {
            table["metadata"]["continue"] = json!(next);
        }
        return ok(table);
    }
    ok(target.list_document(items, rv, next))
}

/// A continue token: the list's resourceVersion and the last key of the page, opaque
/// to clients.
fn encode_continue(rv: u64, (namespace, name): &(String, String)) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{rv}/{namespace}/{name}"))
}

fn decode_continue(token: &str) -> Result<(u64, (String, String)), ApiError> {
    use base64::Engine;
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    // Namespaces never contain '/', names of listed objects neither.
    let mut parts = text.splitn(3, '/');
    let (Some(rv), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok((
        rv.parse().map_err(|_| bad())?,
        (namespace.to_string(), name.to_string()),
    ))
}

/// Whether the client asks for server-side printing (kubectl get).
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("as=Table"))
}

fn parse_body(body: &[u8], headers: &HeaderMap) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    if content_type.contains("protobuf") {
        return crate::protobuf::decode(body).map_err(|err| match err {
            crate::protobuf::ProtobufError::UnsupportedKind(_) => ApiError {
                code: 415,
                reason: "UnsupportedMediaType",
                message: err.to_string(),
                details: None,
            },
            crate::protobuf::ProtobufError::Malformed(_) => ApiError::bad_request(err.to_string()),
        });
    }
    if content_type.contains("cbor") {
        return Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "{content_type} bodies are not supported by this test server; send JSON, YAML or protobuf"
            ),
            details: None,
        });
    }
    let yaml = content_type.contains("yaml");
    let value: Value = if yaml {
        serde_saphyr::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid YAML body: {e}")))?
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be an object"));
    }
    Ok(value)
}

fn parse_patch(body: &[u8], headers: &HeaderMap, query: &HashMap<String, String>) -> Result<Patch, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .unwrap_or("");
    let json = || {
        serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("invalid patch: {e}")))
    };
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" => Ok(Patch::Merge(json()?)),
        "application/strategic-merge-patch+json" => Ok(Patch::Strategic(json()?)),
        "application/json-patch+json" => serde_json::from_slice(body)
            .map(Patch::Json)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}"))),
        "application/apply-patch+yaml" | "application/apply-patch+json" => {
            if query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::bad_request(
                    "fieldManager is required for apply requests",
                ));
            }
            serde_saphyr::from_slice(body)
                .map(Patch::Apply)
                .map_err(|e| ApiError::bad_request(format!("invalid apply body: {e}")))
        }
        other => Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ),
            details: None,
        }),
    }
}

/// An open watch: what it selects and from where.
struct WatchRequest {
    target: Target,
    filter: Filter,
    from: Option<u64>,
    /// A streaming list (`sendInitialEvents=true`): the current objects, then a bookmark
    /// marking the end of them.
    initial_events: bool,
    bookmarks: bool,
    timeout: Duration,
}

impl WatchRequest {
    fn new(target: Target, query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let initial_events = query.get("sendInitialEvents").is_some_and(|v| v == "true");
        let from = match query
            .get("resourceVersion")
            .map(String::as_str)
            .filter(|_| !initial_events)
        {
            None | Some("") | Some("0") => None,
            Some(rv) => Some(
                rv.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
            ),
        };
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|t| t.parse().ok())
            .unwrap_or(1800);
        Ok(Self {
            target,
            filter: Filter::from_query(query)?,
            from,
            initial_events,
            bookmarks: query
                .get("allowWatchBookmarks")
                .is_some_and(|v| v == "true" || v == "1"),
            timeout: Duration::from_secs(timeout),
        })
    }

    fn in_scope(&self, object: &Value) -> bool {
        let ns = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        self.target.namespace.as_deref().is_none_or(|want| want == ns) && self.filter.matches(object)
    }

    /// The watch event line this change is for this watcher, if any: an object
    /// entering the selection is ADDED, one leaving it DELETED.
    fn translate(&self, event: &Event) -> Option<String> {
        let now = self.in_scope(&event.object);
        let before = event.old.as_ref().is_some_and(|old| self.in_scope(old));
        let kind = match event.kind {
            EventType::Added if now => EventType::Added,
            EventType::Modified if now && before => EventType::Modified,
            EventType::Modified if now => EventType::Added,
            EventType::Modified if before => EventType::Deleted,
            EventType::Deleted if now => EventType::Deleted,
            _ => return None,
        };
        let object = if self.target.version == self.target.rt.versions[0]
            && self.target.storage == self.target.rt.gr
        {
            // Stored at this version: every watcher shares one serialisation.
            event.object_json().to_string()
        } else {
            self.target.present(event.object.clone()).to_string()
        };
        Some(format!(
            "{{\"type\":\"{}\",\"object\":{object}}}\n",
            kind.as_str()
        ))
    }
}

fn watch_response(shared: Arc<Shared>, request: WatchRequest) -> Response {
    let line = |v: Value| format!("{v}\n");
    // Snapshot and subscription under one lock, so no event falls between them.
    let (first, mut live, rv) = {
        let store = shared.store();
        let live = shared.events.subscribe();
        let first: Result<Vec<String>, ApiError> = match request.from {
            None => Ok(store
                .list(
                    &request.target.storage,
                    request.target.namespace.as_deref(),
                    |o| request.filter.matches(o),
                )
                .into_iter()
                .map(|o| line(json!({"type": "ADDED", "object": request.target.present(o)})))
                .collect()),
            Some(from) => store
                .events_since(&request.target.storage, from)
                .map(|events| events.iter().filter_map(|e| request.translate(e)).collect()),
        };
        (first, live, store.resource_version())
    };
    let bookmark = move |request: &WatchRequest, rv: u64, initial_end: bool| {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(json!({"type": "BOOKMARK", "object": {
            "apiVersion": request.target.rt.api_version(&request.target.version),
            "kind": request.target.rt.kind,
            "metadata": metadata,
        }}))
    };
    let (first, expired) = match first {
        Ok(mut first) => {
            if request.initial_events {
                first.push(bookmark(&request, rv, true));
            }
            (first, false)
        }
        // kube-rs and client-go expect an expired position as an ERROR event, then relist.
        Err(err) => {
            shared.expired.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (vec![line(json!({"type": "ERROR", "object": err.status()}))], true)
        }
    };
    let (tx, mut rx) = mpsc::channel::<Bytes>(1024);
    let mut epoch = shared.watch_epoch.subscribe();
    tokio::spawn(async move {
        for event in first {
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        let mut last = rv;
        let deadline = tokio::time::sleep(request.timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            let outgoing = tokio::select! {
                // A closed or expired watch delivers nothing more, even if events are ready.
                biased;
                _ = epoch.changed() => return,
                _ = &mut deadline => return,
                received = live.recv() => match received {
                    // The broadcast carries every type in resourceVersion order, so any
                    // event received moves this watch's position.
                    Ok(event) if event.rv > last => {
                        last = event.rv;
                        if event.gr == request.target.storage { request.translate(&event) } else { None }
                    }
                    Ok(_) => None,
                    // Fell behind: end the stream; the client re-watches from its last position.
                    Err(_) => return,
                },
                // Only positions already delivered: a newer store position could skip an
                // event still in flight.
                _ = ticker.tick(), if request.bookmarks => Some(bookmark(&request, last, false)),
            };
            if let Some(event) = outgoing
                && tx.send(Bytes::from(event)).await.is_err()
            {
                return;
            }
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, Infallible>)));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("a static response")
}

/// Binds `addr` and serves until the returned handle is dropped or aborted; over TLS
/// when `tls` is given.
pub async fn serve(
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(shared);
    let Some(tls) = tls else {
        let task = tokio::spawn(async move { axum::serve(listener, app).await });
        return Ok((bound, task));
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, _) = listener.accept().await?;
            let (acceptor, app) = (acceptor.clone(), app.clone());
            // Connections end with the listener (a stopped server drops its clients).
            connections.spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .http1_only()
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok((bound, task))
}
