//! The object store: Kubernetes object semantics over plain JSON, with no I/O.
//!
//! One global, monotonic resourceVersion; a bounded history of change events from
//! which watches are served (older positions get 410 Gone); status subresources;
//! finalizers; generation bumps on spec changes; Service IP and node-port allocation;
//! Secret `stringData`; CustomResourceDefinitions that register new types.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::registry::{self, GroupResource, ResourceType};

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event's `type` field.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, kept in the history for watches.
#[derive(Clone, Debug)]
pub struct Event {
    /// The resourceVersion the change produced.
    pub rv: u64,
    /// The object's type.
    pub gr: GroupResource,
    /// Added, modified or deleted.
    pub kind: EventType,
    /// The object after the change (for a deletion, its last state).
    pub object: Value,
    /// The object before the change, for modifications (selectors need both sides).
    pub old: Option<Value>,
    /// `object` serialised, computed once however many watchers send it.
    json: std::sync::OnceLock<String>,
}

impl Event {
    fn new(rv: u64, gr: GroupResource, kind: EventType, object: Value, old: Option<Value>) -> Self {
        Self {
            rv,
            gr,
            kind,
            object,
            old,
            json: std::sync::OnceLock::new(),
        }
    }

    /// The object as JSON text (at the storage version).
    pub fn object_json(&self) -> &str {
        self.json.get_or_init(|| self.object.to_string())
    }
}

/// Which part of an object a write addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// The object without its status.
    Main,
    /// Only `status`.
    Status,
}

/// A patch body by content type.
#[derive(Clone, Debug)]
pub enum Patch {
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
    /// `application/json-patch+json` (RFC 6902).
    Json(json_patch::Patch),
    /// `application/strategic-merge-patch+json`, approximated by a merge patch: lists
    /// are replaced, not merged by key.
    Strategic(Value),
    /// `application/apply-patch+yaml` (server-side apply), approximated by a merge
    /// patch of the applied configuration; creates the object when it is missing.
    Apply(Value),
}

impl Patch {
    /// Applies the patch to `object` (named `name`, for errors).
    pub fn apply(&self, object: &mut Value, name: &str) -> Result<(), ApiError> {
        match self {
            Patch::Merge(p) | Patch::Strategic(p) | Patch::Apply(p) => json_patch::merge(object, p),
            Patch::Json(p) => json_patch::patch(object, p)
                .map_err(|e| ApiError::invalid("", name, vec![("patch".into(), e.to_string())]))?,
        }
        Ok(())
    }
}

/// Where an object lives: its type, namespace ("" for cluster-scoped) and name.
pub type ObjectKey = (String, String);

/// The store.
pub struct Store {
    rv: u64,
    serial: u64,
    types: BTreeMap<GroupResource, ResourceType>,
    objects: BTreeMap<GroupResource, BTreeMap<ObjectKey, Value>>,
    history: VecDeque<Event>,
    history_limit: usize,
    /// Highest resourceVersion dropped from the history; watching from before it is 410.
    compacted: u64,
    node_ports: BTreeSet<u16>,
    clock: Box<dyn Fn() -> String + Send>,
}

impl Store {
    /// A store with the built-in types, the usual namespaces, and `history_limit` events kept.
    pub fn new(history_limit: usize, clock: Box<dyn Fn() -> String + Send>) -> Self {
        let mut store = Self {
            rv: 0,
            serial: 0,
            types: registry::builtins()
                .into_iter()
                .map(|t| (t.gr.clone(), t))
                .collect(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
            node_ports: BTreeSet::new(),
            clock,
        };
        let namespaces = GroupResource {
            group: String::new(),
            resource: "namespaces".into(),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store
                .create(&namespaces, "", object)
                .expect("a fresh store accepts the standard namespaces");
        }
        store
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Every served type.
    pub fn types(&self) -> impl Iterator<Item = &ResourceType> {
        self.types.values()
    }

    /// The type served at `group/version` under the plural `resource`.
    pub fn resource_type(&self, group: &str, version: &str, resource: &str) -> Option<&ResourceType> {
        self.types
            .get(&GroupResource {
                group: group.into(),
                resource: resource.into(),
            })
            .filter(|t| t.serves(version))
    }

    fn type_of(&self, gr: &GroupResource) -> Result<&ResourceType, ApiError> {
        self.types
            .get(gr)
            .ok_or_else(|| ApiError::no_such_path(&format!("{}/{}", gr.group, gr.resource)))
    }

    /// One object.
    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(gr)
            .and_then(|m| m.get(&(namespace.to_string(), name.to_string())))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&gr.group, &gr.resource, name))
    }

    /// Objects of a type, in one namespace or all (`None`), with the filter applied;
    /// ordered by namespace then name.
    pub fn list(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        filter: impl Fn(&Value) -> bool,
    ) -> Vec<Value> {
        self.objects
            .get(gr)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ns, _), _)| namespace.is_none_or(|want| want == ns))
            .map(|(_, v)| v)
            .filter(|v| filter(v))
            .cloned()
            .collect()
    }

    /// One page of a list in key order: objects after the key `after`, at most `limit`
    /// of them (0: no limit), cloning only those; with the key of the last one when more
    /// remain. Listing 500 of 20,000 Services costs 500 clones, not 20,000.
    pub fn list_page(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        filter: impl Fn(&Value) -> bool,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> (Vec<Value>, Option<ObjectKey>) {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        let Some(map) = self.objects.get(gr) else {
            return (Vec::new(), None);
        };
        let start = match (after, namespace) {
            (Some(key), _) => Excluded(key.clone()),
            (None, Some(ns)) => Included((ns.to_string(), String::new())),
            (None, None) => Unbounded,
        };
        let mut items = Vec::new();
        let mut last: Option<&ObjectKey> = None;
        for (key, value) in map.range((start, Unbounded)) {
            if let Some(ns) = namespace {
                match key.0.as_str().cmp(ns) {
                    std::cmp::Ordering::Less => continue,
                    std::cmp::Ordering::Greater => break,
                    std::cmp::Ordering::Equal => {}
                }
            }
            if !filter(value) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                return (items, last.cloned());
            }
            items.push(value.clone());
            last = Some(key);
        }
        (items, None)
    }

    /// Events of a type after `rv`, or 410 Gone when the history no longer reaches back.
    pub fn events_since(&self, gr: &GroupResource, rv: u64) -> Result<Vec<Event>, ApiError> {
        if rv < self.compacted {
            return Err(ApiError::gone(rv, self.compacted));
        }
        Ok(self
            .history
            .iter()
            .filter(|e| e.rv > rv && e.gr == *gr)
            .cloned()
            .collect())
    }

    /// Every event after `rv`, of every type (what a write just produced).
    pub fn events_after(&self, rv: u64) -> Vec<Event> {
        let start = self.history.partition_point(|e| e.rv <= rv);
        self.history.range(start..).cloned().collect()
    }

    /// Drops all but the newest `keep` events (a test forcing 410 Gone uses this).
    pub fn compact(&mut self, keep: usize) {
        while self.history.len() > keep {
            let dropped = self.history.pop_front().expect("non-empty history");
            self.compacted = dropped.rv;
        }
        if keep == 0 {
            self.compacted = self.rv;
        }
    }

    /// Creates an object in `namespace` ("" for cluster-scoped types).
    pub fn create(
        &mut self,
        gr: &GroupResource,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let rt = self.type_of(gr)?.clone();
        let meta = metadata_mut(&mut object)?;
        if let Some(ns) = meta
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            && rt.namespaced
            && ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let name = match meta.get("name").and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) => {
                    self.serial += 1;
                    format!("{prefix}{:05x}", self.serial)
                }
                None => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        "",
                        vec![(
                            "metadata.name".into(),
                            "Required value: name or generateName is required".into(),
                        )],
                    ));
                }
            },
        };
        let key = (
            if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name.clone(),
        );
        if self.objects.get(gr).is_some_and(|m| m.contains_key(&key)) {
            return Err(ApiError::already_exists(&gr.group, &gr.resource, &name));
        }
        self.serial += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.serial);
        let now = (self.clock)();
        let meta = metadata_mut(&mut object)?;
        meta.insert("name".into(), json!(name));
        if rt.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        set_type_meta(&mut object, &rt);
        if rt.has_status && (!gr.group.is_empty() || gr.resource == "services") {
            // Custom resources and Services ignore a status sent on create.
            object.as_object_mut().expect("checked object").remove("status");
        }
        self.prepare(&rt, &mut object, None)?;
        self.commit(gr, key, EventType::Added, object, None)
    }

    /// Replaces an object (PUT): main resource or status only.
    pub fn update(
        &mut self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
        object: Value,
        sub: Subresource,
    ) -> Result<Value, ApiError> {
        let current = self.get(gr, namespace, name)?;
        self.write(gr, namespace, name, current, object, sub)
    }

    /// Applies a patch to an object; a server-side apply of a missing object creates it.
    pub fn patch(
        &mut self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
        patch: Patch,
        sub: Subresource,
    ) -> Result<Value, ApiError> {
        let current = match (self.get(gr, namespace, name), &patch) {
            (Ok(current), _) => current,
            (Err(_), Patch::Apply(applied)) if sub == Subresource::Main => {
                let mut object = applied.clone();
                metadata_mut(&mut object)?.insert("name".into(), json!(name));
                return self.create(gr, namespace, object);
            }
            (Err(err), _) => return Err(err),
        };
        let mut patched = current.clone();
        patch.apply(&mut patched, name)?;
        self.write(gr, namespace, name, current, patched, sub)
    }

    /// Deletes an object; with finalizers left it is only marked for deletion.
    pub fn delete(&mut self, gr: &GroupResource, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let current = self.get(gr, namespace, name)?;
        let key = (current_namespace(&current), name.to_string());
        if has_finalizers(&current) {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(current);
            }
            let mut marked = current.clone();
            metadata_mut(&mut marked)?.insert("deletionTimestamp".into(), json!((self.clock)()));
            return self.commit(gr, key, EventType::Modified, marked, Some(current));
        }
        self.remove(gr, key, current)
    }

    fn write(
        &mut self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
        current: Value,
        mut object: Value,
        sub: Subresource,
    ) -> Result<Value, ApiError> {
        // A resourceVersion in the body is a precondition (optimistic concurrency).
        if let Some(rv) = resource_version(&object).filter(|rv| !rv.is_empty())
            && Some(rv) != resource_version(&current)
        {
            return Err(ApiError::conflict(&gr.group, &gr.resource, name));
        }
        let rt = self.type_of(gr)?.clone();
        if !object.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        match sub {
            Subresource::Status => {
                let status = object.get("status").cloned();
                object = current.clone();
                let fields = object.as_object_mut().expect("stored objects are objects");
                match status {
                    Some(status) => fields.insert("status".into(), status),
                    None => fields.remove("status"),
                };
            }
            Subresource::Main if rt.has_status => {
                let fields = object.as_object_mut().expect("checked object");
                match current.get("status") {
                    Some(status) => fields.insert("status".into(), status.clone()),
                    None => fields.remove("status"),
                };
            }
            Subresource::Main => {}
        }
        // Fields the server owns.
        let kept = [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "generation",
            "resourceVersion",
        ];
        let current_meta = current["metadata"].as_object().cloned().unwrap_or_default();
        let meta = metadata_mut(&mut object)?;
        for field in kept {
            match current_meta.get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        set_type_meta(&mut object, &rt);
        self.prepare(&rt, &mut object, Some(&current))?;
        if spec_of(&object) != spec_of(&current) {
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            metadata_mut(&mut object)?.insert("generation".into(), json!(generation));
        }
        let key = (current_namespace(&current), name.to_string());
        debug_assert_eq!(
            key.0,
            if rt.namespaced {
                namespace.to_string()
            } else {
                String::new()
            }
        );
        if object == current {
            return Ok(current);
        }
        if current.pointer("/metadata/deletionTimestamp").is_some() && !has_finalizers(&object) {
            return self.remove(gr, key, object);
        }
        self.commit(gr, key, EventType::Modified, object, Some(current))
    }

    /// Kind-specific defaulting and checks on create (`old` = None) and update.
    fn prepare(
        &mut self,
        rt: &ResourceType,
        object: &mut Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let causes = crate::metadata::check(rt, object);
        if !causes.is_empty() {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Err(ApiError::invalid(&rt.kind, name, causes));
        }
        if let Some(version) = rt.crd_version(&rt.versions[0]) {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            return crate::validation::admit(&version["schema"]["openAPIV3Schema"], object, old)
                .map_err(|causes| ApiError::invalid(&rt.kind, &name, causes));
        }
        match (rt.gr.group.as_str(), rt.gr.resource.as_str()) {
            ("", "secrets") => encode_string_data(object),
            ("", "services") => self.allocate_service(object, old),
            ("apiextensions.k8s.io", "customresourcedefinitions") => self.register_crd(object, old),
            _ => Ok(()),
        }
    }

    fn allocate_service(&mut self, svc: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let name = svc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if old.is_some_and(|old| old.get("spec") == svc.get("spec")) {
            // Status and metadata writes: everything was allocated when the spec was set.
            return Ok(());
        }
        let old_ports: BTreeSet<u16> = old.map(node_ports_of).unwrap_or_default().into_iter().collect();
        let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let kind = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        if kind != "ExternalName" && spec.get("clusterIP").is_none_or(Value::is_null) {
            if let Some(old_ip) = old.and_then(|o| o.pointer("/spec/clusterIP")) {
                spec.insert("clusterIP".into(), old_ip.clone());
                spec.insert(
                    "clusterIPs".into(),
                    old.and_then(|o| o.pointer("/spec/clusterIPs"))
                        .cloned()
                        .unwrap_or(json!([old_ip])),
                );
            } else {
                self.serial += 1;
                let policy = spec
                    .get("ipFamilyPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("SingleStack")
                    .to_string();
                let requested: Vec<String> = spec
                    .get("ipFamilies")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                let mut families = if requested.is_empty() {
                    vec!["IPv4".to_string()]
                } else {
                    requested
                };
                if policy != "SingleStack" && families.len() == 1 {
                    families.push(if families[0] == "IPv4" {
                        "IPv6".into()
                    } else {
                        "IPv4".into()
                    });
                }
                families.truncate(if policy == "SingleStack" { 1 } else { 2 });
                let ips: Vec<String> = families
                    .iter()
                    .map(|f| match f.as_str() {
                        "IPv6" => format!("fd00:10:96::{:x}", self.serial),
                        _ => format!("10.96.{}.{}", (self.serial >> 8) & 0xff, self.serial & 0xff),
                    })
                    .collect();
                spec.insert("clusterIP".into(), json!(ips[0]));
                spec.insert("clusterIPs".into(), json!(ips));
                spec.insert("ipFamilies".into(), json!(families));
                spec.insert("ipFamilyPolicy".into(), json!(policy));
            }
        }
        let wants_node_ports = kind == "NodePort"
            || (kind == "LoadBalancer"
                && spec.get("allocateLoadBalancerNodePorts").and_then(Value::as_bool) != Some(false));
        let mut mine = BTreeSet::new();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, port) in ports.iter_mut().enumerate() {
                // kube-apiserver's defaults for a Service port.
                if port.get("protocol").is_none_or(Value::is_null) {
                    port["protocol"] = json!("TCP");
                }
                if port.get("targetPort").is_none_or(Value::is_null) {
                    port["targetPort"] = port["port"].clone();
                }
                let requested = port.get("nodePort").and_then(Value::as_u64).map(|p| p as u16);
                let chosen = match requested {
                    Some(p)
                        if (self.node_ports.contains(&p) && !old_ports.contains(&p)) || mine.contains(&p) =>
                    {
                        return Err(ApiError::invalid(
                            "Service",
                            &name,
                            vec![(
                                format!("spec.ports[{i}].nodePort"),
                                format!("Invalid value: {p}: provided port is already allocated"),
                            )],
                        ));
                    }
                    Some(p) => Some(p),
                    None if wants_node_ports => {
                        let free =
                            (30000..=32767).find(|p| !self.node_ports.contains(p) && !mine.contains(p));
                        if free.is_none() {
                            return Err(ApiError::invalid(
                                "Service",
                                &name,
                                vec![(
                                    format!("spec.ports[{i}].nodePort"),
                                    "failed to allocate a nodePort: range is full \
                                     (set allocateLoadBalancerNodePorts: false)"
                                        .to_string(),
                                )],
                            ));
                        }
                        free
                    }
                    None => None,
                };
                if let Some(p) = chosen {
                    mine.insert(p);
                    port["nodePort"] = json!(p);
                }
            }
        }
        for p in old_ports.difference(&mine) {
            self.node_ports.remove(p);
        }
        self.node_ports.extend(mine);
        Ok(())
    }

    fn register_crd(&mut self, crd: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let rt = ResourceType::from_crd(crd).ok_or_else(|| {
            ApiError::invalid(
                "CustomResourceDefinition",
                &name,
                vec![(
                    "spec".into(),
                    "Invalid value: group, names, scope and one storage version are required".into(),
                )],
            )
        })?;
        if name != format!("{}.{}", rt.gr.resource, rt.gr.group) {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                &name,
                vec![(
                    "metadata.name".into(),
                    format!(
                        "Invalid value: must be spec.names.plural+\".\"+spec.group: {}.{}",
                        rt.gr.resource, rt.gr.group
                    ),
                )],
            ));
        }
        if old.is_none() && self.types.contains_key(&rt.gr) {
            return Err(ApiError::already_exists(
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                &name,
            ));
        }
        crd["status"] = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
            ],
            "acceptedNames": crd["spec"]["names"].clone(),
            "storedVersions": [rt.versions[0].clone()],
        });
        self.types.insert(rt.gr.clone(), rt);
        Ok(())
    }

    fn commit(
        &mut self,
        gr: &GroupResource,
        key: ObjectKey,
        kind: EventType,
        mut object: Value,
        old: Option<Value>,
    ) -> Result<Value, ApiError> {
        self.rv += 1;
        metadata_mut(&mut object)?.insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.objects
            .entry(gr.clone())
            .or_default()
            .insert(key, object.clone());
        self.record(Event::new(self.rv, gr.clone(), kind, object.clone(), old));
        Ok(object)
    }

    fn remove(&mut self, gr: &GroupResource, key: ObjectKey, mut object: Value) -> Result<Value, ApiError> {
        self.objects.get_mut(gr).map(|m| m.remove(&key));
        if gr.resource == "services" && gr.group.is_empty() {
            for p in node_ports_of(&object) {
                self.node_ports.remove(&p);
            }
        }
        self.rv += 1;
        metadata_mut(&mut object)?.insert("resourceVersion".into(), json!(self.rv.to_string()));
        self.record(Event::new(
            self.rv,
            gr.clone(),
            EventType::Deleted,
            object.clone(),
            None,
        ));
        if gr.group == "apiextensions.k8s.io"
            && let Some(rt) = ResourceType::from_crd(&object)
        {
            self.types.remove(&rt.gr);
            let gone: Vec<(ObjectKey, Value)> = self
                .objects
                .remove(&rt.gr)
                .unwrap_or_default()
                .into_iter()
                .collect();
            for (_, mut obj) in gone {
                self.rv += 1;
                metadata_mut(&mut obj)?.insert("resourceVersion".into(), json!(self.rv.to_string()));
                self.record(Event::new(self.rv, rt.gr.clone(), EventType::Deleted, obj, None));
            }
        }
        Ok(object)
    }

    fn record(&mut self, event: Event) {
        self.history.push_back(event);
        if self.history.len() > self.history_limit {
            let dropped = self.history.pop_front().expect("non-empty history");
            self.compacted = dropped.rv;
        }
    }
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let fields = object
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
    let meta = fields.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

fn set_type_meta(object: &mut Value, rt: &ResourceType) {
    object["apiVersion"] = json!(rt.api_version(&rt.versions[0]));
    object["kind"] = json!(rt.kind);
}

fn resource_version(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

fn current_namespace(object: &Value) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn has_finalizers(object: &Value) -> bool {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// Everything but metadata and status: what a generation counts changes of.
fn spec_of(object: &Value) -> Value {
    let mut rest = object.clone();
    if let Some(fields) = rest.as_object_mut() {
        fields.remove("metadata");
        fields.remove("status");
    }
    rest
}

fn node_ports_of(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_u64).map(|p| p as u16))
        .collect()
}

fn encode_string_data(secret: &mut Value) -> Result<(), ApiError> {
    let Some(string_data) = secret.as_object_mut().and_then(|s| s.remove("stringData")) else {
        return Ok(());
    };
    let Some(entries) = string_data.as_object() else {
        return Err(ApiError::bad_request("stringData must be a map of strings"));
    };
    let data = secret
        .as_object_mut()
        .expect("checked object")
        .entry("data")
        .or_insert_with(|| json!({}));
    for (key, value) in entries {
        let text = value
            .as_str()
            .ok_or_else(|| ApiError::bad_request("stringData values must be strings"))?;
        data[key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(4, Box::new(|| "2026-01-01T00:00:00Z".to_string()))
    }

    fn gr(resource: &str) -> GroupResource {
        GroupResource {
            group: String::new(),
            resource: resource.into(),
        }
    }

    #[test]
    fn resource_versions_are_global_and_monotonic() {
        let mut s = store();
        let a = s
            .create(&gr("configmaps"), "default", json!({"metadata": {"name": "a"}}))
            .unwrap();
        let b = s
            .create(&gr("secrets"), "default", json!({"metadata": {"name": "b"}}))
            .unwrap();
        let rv = |o: &Value| {
            o["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        assert!(rv(&b) == rv(&a) + 1);
        assert_eq!(s.resource_version(), rv(&b));
    }

    #[test]
    fn no_op_updates_change_nothing() {
        let mut s = store();
        let a = s
            .create(
                &gr("configmaps"),
                "default",
                json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
            )
            .unwrap();
        let again = s
            .update(&gr("configmaps"), "default", "a", a.clone(), Subresource::Main)
            .unwrap();
        assert_eq!(a, again);
        assert_eq!(
            s.events_after(s.resource_version() - 1).len(),
            1,
            "only the create"
        );
    }

    #[test]
    fn history_is_bounded_and_older_positions_are_gone() {
        let mut s = store();
        for i in 0..10 {
            s.create(
                &gr("configmaps"),
                "default",
                json!({"metadata": {"name": format!("c{i}")}}),
            )
            .unwrap();
        }
        let now = s.resource_version();
        assert_eq!(s.events_since(&gr("configmaps"), now - 2).unwrap().len(), 2);
        assert_eq!(s.events_since(&gr("configmaps"), 1).unwrap_err().code, 410);
    }

    #[test]
    fn generation_counts_spec_changes_only() {
        let mut s = store();
        let svc = json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}});
        s.create(&gr("services"), "default", svc).unwrap();
        let status = Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}));
        let after = s
            .patch(&gr("services"), "default", "s", status, Subresource::Status)
            .unwrap();
        assert_eq!(after["metadata"]["generation"], 1);
        let spec = Patch::Merge(json!({"spec": {"ports": [{"port": 81}]}}));
        let after = s
            .patch(&gr("services"), "default", "s", spec, Subresource::Main)
            .unwrap();
        assert_eq!(after["metadata"]["generation"], 2);
        assert_eq!(after["status"]["loadBalancer"]["ingress"][0]["ip"], "10.0.0.1");
    }

    #[test]
    fn deleting_a_crd_removes_its_type_and_objects() {
        let mut s = store();
        let crds = GroupResource {
            group: "apiextensions.k8s.io".into(),
            resource: "customresourcedefinitions".into(),
        };
        let crd = json!({
            "metadata": {"name": "widgets.example.io"},
            "spec": {"group": "example.io", "scope": "Namespaced",
                     "names": {"plural": "widgets", "kind": "Widget"},
                     "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}
        });
        s.create(&crds, "", crd).unwrap();
        let widgets = GroupResource {
            group: "example.io".into(),
            resource: "widgets".into(),
        };
        s.create(&widgets, "default", json!({"metadata": {"name": "w"}}))
            .unwrap();
        assert!(s.resource_type("example.io", "v1", "widgets").is_some());
        let before = s.resource_version();
        s.delete(&crds, "", "widgets.example.io").unwrap();
        assert!(s.resource_type("example.io", "v1", "widgets").is_none());
        let events = s.events_since(&widgets, before).unwrap();
        assert_eq!(events.last().unwrap().kind, EventType::Deleted);
    }
}
