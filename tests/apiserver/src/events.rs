//! One Event store behind two APIs, as in Kubernetes: `events.k8s.io/v1` Events are
//! kept in the core `v1` form and converted on the way in and out, so an Event written
//! through either API is read through both (`kubectl describe` reads core Events;
//! FerroLB and client-go's new recorder write `events.k8s.io`).

use serde_json::{Map, Value};

use crate::registry::GroupResource;

/// Field renames between the two forms: (`events.k8s.io/v1`, core `v1`).
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedSource", "source"),
    ("reportingController", "reportingComponent"),
];

/// Whether `gr` is the `events.k8s.io` view of the core Events.
pub fn is_events_view(gr: &GroupResource) -> bool {
    gr.group == "events.k8s.io" && gr.resource == "events"
}

/// The core group's Events, where both views are stored.
pub fn core() -> GroupResource {
    GroupResource {
        group: String::new(),
        resource: "events".into(),
    }
}

/// An `events.k8s.io/v1` Event in its stored core form.
pub fn to_core(event: Value) -> Value {
    convert(event, |(new, old)| (*new, *old), "v1")
}

/// A stored core Event in its `events.k8s.io/v1` form.
pub fn from_core(event: Value) -> Value {
    convert(event, |(new, old)| (*old, *new), "events.k8s.io/v1")
}

fn convert(
    event: Value,
    direction: impl Fn(&(&'static str, &'static str)) -> (&'static str, &'static str),
    api_version: &str,
) -> Value {
    let Value::Object(fields) = event else {
        return event;
    };
    let mut out = Map::with_capacity(fields.len());
    for (key, value) in fields {
        let renamed = RENAMES
            .iter()
            .map(&direction)
            .find(|(from, _)| *from == key)
            .map_or(key, |(_, to)| to.to_string());
        out.insert(renamed, value);
    }
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from("Event"));
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_forms_round_trip() {
        let new = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "demo"},
            "regarding": {"kind": "Service", "name": "web", "uid": "u1"},
            "note": "Assigned IP [\"10.0.0.1\"]", "reason": "IPAllocated", "type": "Normal",
            "reportingController": "ferrolb.io/controller", "reportingInstance": "c-1",
            "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Allocate",
        });
        let core = to_core(new.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["message"], new["note"]);
        assert_eq!(core["reportingComponent"], "ferrolb.io/controller");
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(from_core(core), new);
    }
}
