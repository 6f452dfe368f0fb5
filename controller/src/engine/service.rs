//! One Service as the engine sees it, what the engine wants it to show, and the
//! patches that get it there.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_crds::annotations;
use ferrolb_crds::service::ingress_ips;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;
use serde_json::json;

use crate::allocator::{ClassPolicy, Request, RequestError, read};

/// The condition type FerroLB owns on Services.
pub const CONDITION: &str = "ferrolb.io/Allocated";

/// The parts of a Service the engine needs (the rest is dropped to keep memory small).
#[derive(Clone, Debug)]
pub struct View {
    /// For Events.
    pub uid: Option<String>,
    /// For Events and the condition's observedGeneration.
    pub generation: Option<i64>,
    /// Creation time, for fairness among pending Services.
    pub created: Option<Time>,
    /// Whether the Service is a LoadBalancer of our class.
    pub ours: bool,
    /// Whether it is a LoadBalancer at all.
    pub load_balancer: bool,
    /// Its request, without namespace labels (those are added when it is used); `None`
    /// for Services that are not ours.
    pub request: Option<Result<Request, RequestError>>,
    /// The addresses its status shows.
    pub ingress: Vec<IpAddr>,
    /// Its status conditions, ours included.
    pub conditions: Vec<Condition>,
    /// The pool annotation FerroLB wrote.
    pub pool_annotation: Option<String>,
}

impl View {
    /// Reads a Service.
    pub fn of(service: &Service, class: &ClassPolicy) -> Self {
        let key = annotations::IP_ALLOCATED_FROM_POOL.key();
        let ours = class.is_ours(service);
        Self {
            uid: service.metadata.uid.clone(),
            generation: service.metadata.generation,
            created: service.metadata.creation_timestamp.clone(),
            ours,
            load_balancer: service.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"),
            // Only our Services' requests matter (and reading them costs memory).
            request: ours.then(|| read(service, &BTreeMap::new())),
            ingress: ingress_ips(service),
            conditions: service
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default(),
            pool_annotation: service
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(&key).cloned()),
        }
    }

    /// Our condition, if present.
    pub fn condition(&self) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == CONDITION)
    }

    /// What the Service shows now, in the engine's terms.
    pub fn shown(&self) -> Desired {
        Desired {
            ingress: self.ingress.clone(),
            condition: self.condition().map(|c| Verdict {
                ok: c.status == "True",
                reason: c.reason.clone(),
                message: c.message.clone(),
            }),
            pool_annotation: self.pool_annotation.clone(),
        }
    }
}

/// Our condition's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the Service has its addresses.
    pub ok: bool,
    /// CamelCase reason.
    pub reason: String,
    /// For a human.
    pub message: String,
}

/// What a Service should show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// `status.loadBalancer.ingress` addresses.
    pub ingress: Vec<IpAddr>,
    /// Our condition; `None` removes it.
    pub condition: Option<Verdict>,
    /// The ip-allocated-from-pool annotation; `None` removes it.
    pub pool_annotation: Option<String>,
}

impl Desired {
    /// Nothing of ours on the Service.
    pub fn cleared() -> Self {
        Self {
            ingress: Vec::new(),
            condition: None,
            pool_annotation: None,
        }
    }
}

/// A merge patch of a Service's status subresource. Typed rather than a JSON tree:
/// thousands wait in the writer's queue after a restart, and this is a fifth the size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusPatch {
    status: StatusBody,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct StatusBody {
    #[serde(rename = "loadBalancer")]
    load_balancer: LoadBalancerBody,
    /// `None` removes the list.
    conditions: Option<Vec<Condition>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct LoadBalancerBody {
    /// `None` removes the list.
    ingress: Option<Vec<Ingress>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
struct Ingress {
    ip: IpAddr,
}

/// A merge patch of a Service's metadata setting or removing the pool annotation.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnotationPatch(pub Option<String>);

impl Serialize for AnnotationPatch {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        json!({"metadata": {"annotations": {annotations::IP_ALLOCATED_FROM_POOL.key(): self.0}}})
            .serialize(serializer)
    }
}

/// The patch of the status subresource taking `view` to `desired`, if any.
pub fn status_patch(view: &View, desired: &Desired, now: &Time) -> Option<StatusPatch> {
    let shown = view.shown();
    if shown.ingress == desired.ingress && shown.condition == desired.condition {
        return None;
    }
    let ingress: Vec<Ingress> = desired.ingress.iter().map(|ip| Ingress { ip: *ip }).collect();
    let mut conditions: Vec<Condition> = view
        .conditions
        .iter()
        .filter(|c| c.type_ != CONDITION)
        .cloned()
        .collect();
    if let Some(verdict) = &desired.condition {
        let status = if verdict.ok { "True" } else { "False" };
        let since = view
            .condition()
            .filter(|c| c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        conditions.push(Condition {
            type_: CONDITION.into(),
            status: status.into(),
            reason: verdict.reason.clone(),
            message: verdict.message.clone(),
            last_transition_time: since,
            observed_generation: view.generation,
        });
    }
    Some(StatusPatch {
        status: StatusBody {
            load_balancer: LoadBalancerBody {
                ingress: (!ingress.is_empty()).then_some(ingress),
            },
            conditions: (!conditions.is_empty()).then_some(conditions),
        },
    })
}

/// The patch of the Service's metadata taking `view` to `desired`, if any.
pub fn metadata_patch(view: &View, desired: &Desired) -> Option<AnnotationPatch> {
    (view.pool_annotation != desired.pool_annotation)
        .then(|| AnnotationPatch(desired.pool_annotation.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: serde_json::Value, annotations: serde_json::Value) -> View {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"namespace": "ns", "name": "web", "generation": 3, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.1"},
            "status": status,
        }))
        .unwrap();
        View::of(&svc, &ClassPolicy::default())
    }

    fn now() -> Time {
        serde_json::from_value(json!("2026-11-23T10:00:00Z")).unwrap()
    }

    #[test]
    fn nothing_to_write_when_shown_equals_desired() {
        let v = view(
            json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}, "conditions": [{
                "type": CONDITION, "status": "True", "reason": "Allocated", "message": "m",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            json!({"ferrolb.io/ip-allocated-from-pool": "p"}),
        );
        let d = Desired {
            ingress: vec!["10.0.0.1".parse().unwrap()],
            condition: Some(Verdict {
                ok: true,
                reason: "Allocated".into(),
                message: "m".into(),
            }),
            pool_annotation: Some("p".into()),
        };
        assert_eq!(status_patch(&v, &d, &now()), None);
        assert_eq!(metadata_patch(&v, &d), None);
    }

    #[test]
    fn failure_keeps_other_conditions_and_clears_ingress() {
        let v = view(
            json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}, "conditions": [{
                "type": "other.io/X", "status": "True", "reason": "R", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            json!({"ferrolb.io/ip-allocated-from-pool": "p"}),
        );
        let d = Desired {
            ingress: vec![],
            condition: Some(Verdict {
                ok: false,
                reason: "PoolExhausted".into(),
                message: "full".into(),
            }),
            pool_annotation: None,
        };
        let patch = serde_json::to_value(status_patch(&v, &d, &now()).unwrap()).unwrap();
        assert_eq!(patch["status"]["loadBalancer"], json!({"ingress": null}));
        let conditions = patch["status"]["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[1]["reason"], "PoolExhausted");
        assert_eq!(conditions[1]["observedGeneration"], 3);
        assert_eq!(conditions[1]["lastTransitionTime"], "2026-11-23T10:00:00Z");
        assert_eq!(
            serde_json::to_value(metadata_patch(&v, &d).unwrap()).unwrap(),
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}}})
        );
    }
}
