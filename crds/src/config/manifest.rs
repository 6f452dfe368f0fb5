//! Reading FerroLB objects from YAML manifests (for offline validation and tests).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Objects;

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML (the parser's error names the line and column).
    #[error("not valid YAML: {0}")]
    Yaml(#[from] serde_saphyr::Error),
    /// YAML, but not a Kubernetes object.
    #[error("document {index}: not a Kubernetes object (apiVersion and kind are required)")]
    NotAnObject {
        /// 1-based document number.
        index: usize,
    },
    /// A MetalLB object: the only change needed is its apiVersion.
    #[error(
        "document {index}: {kind} {name:?} uses MetalLB's apiVersion {api_version}; change it to ferrolb.io/{version}"
    )]
    MetalLb {
        /// 1-based document number.
        index: usize,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The apiVersion found.
        api_version: String,
        /// The version part to keep.
        version: String,
    },
    /// A FerroLB kind this version does not know, or a field of the wrong type.
    #[error("document {index}: {kind} {name:?}: {message}")]
    Decode {
        /// 1-based document number.
        index: usize,
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    #[serde(default)]
    metadata: HeaderMeta,
}

#[derive(Deserialize, Default)]
struct HeaderMeta {
    #[serde(default)]
    name: String,
}

/// Reads every document of a multi-document YAML text. FerroLB kinds, core/v1 Secrets
/// and Nodes are kept; other kinds (Services, Deployments, …) are skipped.
pub fn parse_manifests(text: &str) -> Result<Objects, ManifestError> {
    let mut objects = Objects::default();
    let documents: Vec<Value> = serde_saphyr::from_multiple(text)?;
    for (i, mut value) in documents.into_iter().enumerate() {
        let index = i + 1;
        if value.is_null() {
            continue;
        }
        let header = Header::deserialize(&value).map_err(|_| ManifestError::NotAnObject { index })?;
        let (Some(api_version), Some(kind)) = (header.api_version, header.kind) else {
            return Err(ManifestError::NotAnObject { index });
        };
        let name = header.metadata.name;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version.as_str()));
        let decode_error = |message: String| ManifestError::Decode {
            index,
            kind: kind.clone(),
            name: name.clone(),
            message,
        };
        if group == "metallb.io" {
            return Err(ManifestError::MetalLb {
                index,
                kind: kind.clone(),
                name: name.clone(),
                api_version: api_version.clone(),
                version: version.to_string(),
            });
        }
        if group == crate::GROUP
            && crate::api::SPEC_OPTIONAL_KINDS.contains(&kind.as_str())
            && let Some(map) = value.as_object_mut()
            && !map.contains_key("spec")
        {
            // What the API server's defaulting does for these kinds.
            map.insert("spec".into(), Value::Object(serde_json::Map::new()));
        }
        match (group, kind.as_str()) {
            ("ferrolb.io", "IPAddressPool") => objects.pools.push(decode(value, &decode_error)?),
            ("ferrolb.io", "L2Advertisement") => {
                objects.l2_advertisements.push(decode(value, &decode_error)?)
            }
            ("ferrolb.io", "BGPAdvertisement") => {
                objects.bgp_advertisements.push(decode(value, &decode_error)?)
            }
            ("ferrolb.io", "BGPPeer") => {
                if version != "v1beta2" {
                    return Err(decode_error(format!(
                        "BGPPeer is served as ferrolb.io/v1beta2, not {version}"
                    )));
                }
                objects.bgp_peers.push(decode(value, &decode_error)?)
            }
            ("ferrolb.io", "Community") => objects.communities.push(decode(value, &decode_error)?),
            ("ferrolb.io", "BFDProfile") => objects.bfd_profiles.push(decode(value, &decode_error)?),
            ("ferrolb.io", other) => {
                return Err(decode_error(format!(
                    "{other} is not a FerroLB configuration kind"
                )));
            }
            ("", "Secret") => objects.secrets.push(decode(value, &decode_error)?),
            ("", "Node") => objects.nodes.push(decode(value, &decode_error)?),
            _ => {}
        }
    }
    Ok(objects)
}

fn decode<T: DeserializeOwned>(
    value: Value,
    error: &dyn Fn(String) -> ManifestError,
) -> Result<T, ManifestError> {
    serde_json::from_value(value).map_err(|e| error(e.to_string()))
}
