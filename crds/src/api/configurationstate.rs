//! ConfigurationState: whether a component accepted the configuration.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Empty spec; a component writes its verdict into status.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    plural = "configurationstates",
    namespaced,
    status = "ConfigurationStateStatus",
    shortname = "cfgstate",
    category = "ferrolb",
    derive = "PartialEq",
    derive = "Default",
    doc = "Whether one FerroLB component (the controller, or the speaker of one node) accepted the configuration.",
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(name = "Errors", type_ = "string", json_path = ".status.errorSummary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
pub struct ConfigurationStateSpec {}

/// A component's verdict on the configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// Valid when every object was accepted, Invalid when at least one was not.
    #[serde(default)]
    pub result: ConfigurationResult,
    /// One line per rejected object, naming it, the field and the reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error_summary: String,
    /// Detailed conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The overall verdict.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConfigurationResult {
    /// Not evaluated yet.
    #[default]
    Unknown,
    /// Every object was accepted.
    Valid,
    /// At least one object was rejected; the valid rest is in use.
    Invalid,
}
