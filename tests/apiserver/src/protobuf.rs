//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`),
//! decoded to the JSON the store keeps.
//!
//! client-go's typed clients send built-in kinds this way: helm's release records
//! (Secrets), `--create-namespace`, `kubectl create namespace|secret|configmap|
//! serviceaccount|token`. A body is the magic `k8s\0` and a `runtime.Unknown` envelope
//! whose `raw` field holds the object. Rather than pull in generated types for every
//! kind (k8s-pb's have no serde, so each would need a hand-written mapping to JSON
//! anyway), each kind clients actually send is described here by a small schema table
//! of field numbers, the same numbers as Kubernetes' `generated.proto`. Unknown fields
//! are skipped; a kind without a table is refused with 415, naming it.

use base64::Engine;
use serde_json::{Map, Value, json};

/// What a body that cannot be decoded is refused with.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// Not a well-formed protobuf message.
    #[error("malformed protobuf body: {0}")]
    Malformed(&'static str),
    /// A kind this server has no schema for.
    #[error("protobuf bodies of kind {0:?} are not supported by this test server; send JSON")]
    UnsupportedKind(String),
}

/// How one field's value is encoded and rendered in JSON.
#[derive(Clone, Copy)]
enum Ty {
    Str,
    /// Rendered base64, as JSON carries bytes.
    Bytes,
    Int,
    Bool,
    /// `meta.v1.Time`: seconds (and nanos) since the epoch, rendered RFC 3339.
    Time,
    Msg(&'static [F]),
    /// `map<string, string>` (`true`: the values are bytes, rendered base64).
    Map(bool),
}

/// A field: number, JSON name, type, and whether it repeats.
type F = (u64, &'static str, Ty, bool);

const OWNER_REFERENCE: &[F] = &[
    (1, "kind", Ty::Str, false),
    (3, "name", Ty::Str, false),
    (4, "uid", Ty::Str, false),
    (5, "apiVersion", Ty::Str, false),
    (6, "controller", Ty::Bool, false),
    (7, "blockOwnerDeletion", Ty::Bool, false),
];

const OBJECT_META: &[F] = &[
    (1, "name", Ty::Str, false),
    (2, "generateName", Ty::Str, false),
    (3, "namespace", Ty::Str, false),
    (5, "uid", Ty::Str, false),
    (6, "resourceVersion", Ty::Str, false),
    (7, "generation", Ty::Int, false),
    (8, "creationTimestamp", Ty::Time, false),
    (11, "labels", Ty::Map(false), false),
    (12, "annotations", Ty::Map(false), false),
    (13, "ownerReferences", Ty::Msg(OWNER_REFERENCE), true),
    (14, "finalizers", Ty::Str, true),
];

const NAME_REFERENCE: &[F] = &[(1, "name", Ty::Str, false)];

const OBJECT_REFERENCE: &[F] = &[
    (1, "kind", Ty::Str, false),
    (2, "namespace", Ty::Str, false),
    (3, "name", Ty::Str, false),
    (4, "uid", Ty::Str, false),
    (5, "apiVersion", Ty::Str, false),
];

const SECRET: &[F] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (2, "data", Ty::Map(true), false),
    (3, "type", Ty::Str, false),
    (4, "stringData", Ty::Map(false), false),
    (5, "immutable", Ty::Bool, false),
];

const CONFIG_MAP: &[F] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (2, "data", Ty::Map(false), false),
    (3, "binaryData", Ty::Map(true), false),
    (4, "immutable", Ty::Bool, false),
];

const NAMESPACE: &[F] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (2, "spec", Ty::Msg(&[(1, "finalizers", Ty::Str, true)]), false),
];

const SERVICE_ACCOUNT: &[F] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (2, "secrets", Ty::Msg(OBJECT_REFERENCE), true),
    (3, "imagePullSecrets", Ty::Msg(NAME_REFERENCE), true),
    (4, "automountServiceAccountToken", Ty::Bool, false),
];

const BOUND_OBJECT_REFERENCE: &[F] = &[
    (1, "kind", Ty::Str, false),
    (2, "apiVersion", Ty::Str, false),
    (3, "name", Ty::Str, false),
    (4, "uid", Ty::Str, false),
];

const TOKEN_REQUEST: &[F] = &[
    (1, "metadata", Ty::Msg(OBJECT_META), false),
    (
        2,
        "spec",
        Ty::Msg(&[
            (1, "audiences", Ty::Str, true),
            (3, "boundObjectRef", Ty::Msg(BOUND_OBJECT_REFERENCE), false),
            (4, "expirationSeconds", Ty::Int, false),
        ]),
        false,
    ),
];

/// `runtime.Unknown`'s `typeMeta`.
const TYPE_META: &[F] = &[(1, "apiVersion", Ty::Str, false), (2, "kind", Ty::Str, false)];

/// The kinds with a table: what client-go's typed clients send to this server.
fn schema_of(api_version: &str, kind: &str) -> Option<&'static [F]> {
    Some(match (api_version, kind) {
        ("v1", "Secret") => SECRET,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("authentication.k8s.io/v1", "TokenRequest") => TOKEN_REQUEST,
        _ => return None,
    })
}

/// Decodes a protobuf request body (magic, envelope, object) to its JSON form.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let envelope = body
        .strip_prefix(b"k8s\0")
        .ok_or(ProtobufError::Malformed("no k8s protobuf magic"))?;
    let mut type_meta = Value::Null;
    let mut raw: &[u8] = &[];
    for field in Fields(envelope) {
        match field? {
            (1, Wire::Len(bytes)) => type_meta = message(bytes, TYPE_META)?,
            (2, Wire::Len(bytes)) => raw = bytes,
            _ => {}
        }
    }
    let api_version = type_meta["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = type_meta["kind"].as_str().unwrap_or_default().to_string();
    let schema = schema_of(&api_version, &kind)
        .ok_or_else(|| ProtobufError::UnsupportedKind(format!("{api_version} {kind}")))?;
    let mut object = message(raw, schema)?;
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

/// One field's payload as the wire carries it.
enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

/// The fields of a message, in order.
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Wire<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        Some(self.field())
    }
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or(ProtobufError::Malformed("truncated varint"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if self.0.len() < n {
            return Err(ProtobufError::Malformed("field runs past the end of its message"));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), ProtobufError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| ProtobufError::Malformed("length does not fit in memory"))?;
                Wire::Len(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            _ => return Err(ProtobufError::Malformed("unsupported wire type (groups)")),
        };
        Ok((key >> 3, wire))
    }
}

/// Decodes a message by its schema table; fields not in the table are skipped.
fn message(bytes: &[u8], schema: &[F]) -> Result<Value, ProtobufError> {
    let mut object = Map::new();
    for field in Fields(bytes) {
        let (number, wire) = field?;
        let Some(&(_, name, ty, repeated)) = schema.iter().find(|f| f.0 == number) else {
            continue;
        };
        let value = scalar(ty, wire)?;
        match (ty, repeated) {
            (Ty::Map(_), _) => {
                let (key, value) = value;
                object
                    .entry(name)
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .expect("maps are objects")
                    .insert(key, value);
            }
            (_, true) => object
                .entry(name)
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .expect("repeated fields are arrays")
                .push(value.1),
            // Go writes every non-pointer field, empty or not; its JSON leaves those
            // out (`omitempty`), and so does this decoder.
            (_, false) if is_zero(&value.1) => {}
            (_, false) => {
                object.insert(name.into(), value.1);
            }
        }
    }
    Ok(Value::Object(object))
}

fn is_zero(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.is_empty())
        || value.as_i64() == Some(0)
        || value.as_bool() == Some(false)
}

/// One value; map entries come back as (key, value), other values with an empty key.
fn scalar(ty: Ty, wire: Wire<'_>) -> Result<(String, Value), ProtobufError> {
    let bad = ProtobufError::Malformed("field has the wrong wire type for its kind");
    let base64 = |b: &[u8]| json!(base64::engine::general_purpose::STANDARD.encode(b));
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(|s| json!(s))
            .map_err(|_| ProtobufError::Malformed("string field is not UTF-8"))
    };
    let value = match (ty, wire) {
        (Ty::Int, Wire::Varint(v)) => json!(v as i64),
        (Ty::Bool, Wire::Varint(v)) => json!(v != 0),
        (Ty::Str, Wire::Len(b)) => text(b)?,
        (Ty::Bytes, Wire::Len(b)) => base64(b),
        (Ty::Msg(schema), Wire::Len(b)) => message(b, schema)?,
        (Ty::Time, Wire::Len(b)) => {
            let seconds = message(b, &[(1, "seconds", Ty::Int, false)])?["seconds"]
                .as_i64()
                .unwrap_or(0);
            let time = k8s_openapi::jiff::Timestamp::from_second(seconds)
                .map_err(|_| ProtobufError::Malformed("time out of range"))?;
            json!(time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        }
        (Ty::Map(bytes), Wire::Len(b)) => {
            let entry = message(
                b,
                &[
                    (1, "key", Ty::Str, false),
                    (2, "value", if bytes { Ty::Bytes } else { Ty::Str }, false),
                ],
            )?;
            let key = entry["key"].as_str().unwrap_or_default().to_string();
            let value = match entry.get("value") {
                Some(v) => v.clone(),
                None => json!(""),
            };
            return Ok((key, value));
        }
        _ => return Err(bad),
    };
    Ok((String::new(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn len(field: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        varint(field << 3 | 2, &mut out);
        varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
        out
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        [len(1, key.as_bytes()), len(2, value)].concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [len(1, api_version.as_bytes()), len(2, kind.as_bytes())].concat();
        [
            b"k8s\0".to_vec(),
            len(1, &type_meta),
            len(2, raw),
            len(3, b""),
            len(4, b""),
        ]
        .concat()
    }

    #[test]
    fn a_helm_release_secret() {
        let meta = [
            len(1, b"sh.helm.release.v1.ferrolb.v1"),
            len(3, b"ferrolb-system"),
            len(11, &entry("owner", b"helm")),
            len(11, &entry("status", b"deployed")),
        ]
        .concat();
        let mut immutable = Vec::new();
        varint(5 << 3, &mut immutable);
        varint(1, &mut immutable);
        let raw = [
            len(1, &meta),
            len(2, &entry("release", b"\x00\xffbinary")),
            len(3, b"helm.sh/release.v1"),
            immutable,
        ]
        .concat();
        let object = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            object,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "sh.helm.release.v1.ferrolb.v1", "namespace": "ferrolb-system",
                             "labels": {"owner": "helm", "status": "deployed"}},
                "data": {"release": "AP9iaW5hcnk="},
                "type": "helm.sh/release.v1",
                "immutable": true,
            })
        );
    }

    #[test]
    fn repeated_fields_and_times() {
        let time = {
            let mut t = Vec::new();
            varint(1 << 3, &mut t);
            varint(1_700_000_000, &mut t);
            t
        };
        let meta = [
            len(1, b"demo"),
            len(2, b""),
            len(3, b""),
            len(8, &time),
            len(14, b"a"),
            len(14, b"b"),
        ]
        .concat();
        let object = decode(&envelope("v1", "Namespace", &len(1, &meta))).unwrap();
        assert_eq!(object["metadata"]["finalizers"], json!(["a", "b"]));
        assert!(
            object["metadata"].get("namespace").is_none(),
            "empty strings are left out"
        );
        assert_eq!(object["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        assert_eq!(
            decode(b"{}"),
            Err(ProtobufError::Malformed("no k8s protobuf magic"))
        );
        assert!(matches!(
            decode(&envelope("apps/v1", "Deployment", b"")),
            Err(ProtobufError::UnsupportedKind(k)) if k == "apps/v1 Deployment"
        ));
        // A length prefix past the end, a truncated varint, a group wire type.
        for body in [&b"k8s\0\x12\x05ab"[..], b"k8s\0\x08\xff", b"k8s\0\x0b"] {
            assert!(
                matches!(decode(body), Err(ProtobufError::Malformed(_))),
                "{body:?}"
            );
        }
        // Arbitrary bytes never panic.
        let mut seed = 7u64;
        for _ in 0..2_000 {
            let body: Vec<u8> = b"k8s\0"
                .iter()
                .copied()
                .chain((0..seed % 40).map(|i| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407 + i);
                    (seed >> 33) as u8
                }))
                .collect();
            let _ = decode(&body);
        }
    }
}
