//! Custom resources against their CRD's `openAPIV3Schema`, in the API server's order:
//! prune unknown fields, apply defaults, check the structural schema, then evaluate
//! the CEL rules (`x-kubernetes-validations`, with kube-cel). Every failure becomes a
//! cause of one 422 Invalid, with the field path a real server would name.

use serde_json::{Map, Value};

/// Prunes, defaults and validates `object` (a whole custom resource) in place;
/// `old` is the stored object on updates (for CEL transition rules).
pub fn admit(schema: &Value, object: &mut Value, old: Option<&Value>) -> Result<(), Vec<(String, String)>> {
    if let (Some(fields), Some(properties)) = (object.as_object_mut(), schema["properties"].as_object()) {
        for (name, value) in fields
            .iter_mut()
            .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        {
            if let Some(sub) = properties.get(name) {
                prune_and_default(sub, value);
            }
        }
        fields.retain(|k, _| {
            matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || properties.contains_key(k)
        });
        for (name, sub) in properties {
            if !fields.contains_key(name)
                && let Some(default) = sub.get("default")
            {
                let mut value = default.clone();
                prune_and_default(sub, &mut value);
                fields.insert(name.clone(), value);
            }
        }
    }
    let mut causes = Vec::new();
    if let Some(properties) = schema["properties"].as_object() {
        for (name, sub) in properties {
            match object.get(name) {
                Some(value) => check(sub, value, name, &mut causes),
                None if required(schema).any(|r| r == name) => {
                    causes.push((name.clone(), "Required value".into()))
                }
                None => {}
            }
        }
    }
    if causes.is_empty()
        && let Err(errors) = kube::core::cel::Validator::new().validate(schema, object, old)
    {
        for error in errors.as_slice() {
            causes.push((
                error.field_path.clone(),
                format!("Invalid value: {}", error.message),
            ));
        }
    }
    if causes.is_empty() { Ok(()) } else { Err(causes) }
}

fn required(schema: &Value) -> impl Iterator<Item = &str> {
    schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

/// Removes fields the schema does not know and fills in defaults, recursively.
fn prune_and_default(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(fields) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (name, sub) in properties {
                    if !fields.contains_key(name)
                        && let Some(default) = sub.get("default")
                    {
                        fields.insert(name.clone(), default.clone());
                    }
                }
                for (name, v) in fields.iter_mut() {
                    if let Some(sub) = properties.get(name) {
                        prune_and_default(sub, v);
                    }
                }
                if !preserves_unknown(schema) && schema.get("additionalProperties").is_none() {
                    fields.retain(|k, _| properties.contains_key(k));
                }
            } else if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in fields.values_mut() {
                    prune_and_default(additional, v);
                }
            } else if !preserves_unknown(schema)
                && schema["type"] == "object"
                && schema.get("additionalProperties").is_none()
            {
                fields.clear();
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune_and_default(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Structural checks of `value` at `path`.
fn check(schema: &Value, value: &Value, path: &str, causes: &mut Vec<(String, String)>) {
    let mut fail = |message: String| causes.push((path.to_string(), message));
    if value.is_null() {
        if schema["nullable"] != true {
            fail("Invalid value: \"null\": must not be null".into());
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            fail(format!("Invalid value: {value}: must be an integer or a string"));
        }
        return;
    }
    let expected = schema["type"].as_str().unwrap_or("");
    let type_ok = match expected {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        fail(format!(
            "Invalid value: \"{}\": {path} in body must be of type {expected}",
            kind_of(value)
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        fail(format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ));
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema["maxLength"].as_u64().filter(|max| len > *max) {
                fail(format!("Too long: may not be more than {max} bytes"));
            }
            if let Some(min) = schema["minLength"].as_u64().filter(|min| len < *min) {
                fail(format!(
                    "Invalid value: {value}: {path} in body should be at least {min} chars long"
                ));
            }
            if let Some(pattern) = schema["pattern"].as_str() {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => fail(format!(
                        "Invalid value: {value}: {path} in body should match '{pattern}'"
                    )),
                    Ok(_) => {}
                    Err(_) => fail(format!("the schema's pattern {pattern:?} does not compile")),
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(max) = schema["maximum"].as_f64() {
                let exclusive = schema["exclusiveMaximum"] == true;
                if x > max || (exclusive && x >= max) {
                    fail(format!(
                        "Invalid value: {n}: {path} in body should be less than or equal to {max}"
                    ));
                }
            }
            if let Some(min) = schema["minimum"].as_f64() {
                let exclusive = schema["exclusiveMinimum"] == true;
                if x < min || (exclusive && x <= min) {
                    fail(format!(
                        "Invalid value: {n}: {path} in body should be greater than or equal to {min}"
                    ));
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"]
                .as_u64()
                .filter(|max| items.len() as u64 > *max)
            {
                fail(format!(
                    "Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            if let Some(min) = schema["minItems"]
                .as_u64()
                .filter(|min| (items.len() as u64) < *min)
            {
                fail(format!(
                    "Invalid value: {}: {path} in body should have at least {min} items",
                    items.len()
                ));
            }
            match schema["x-kubernetes-list-type"].as_str() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            causes.push((format!("{path}[{i}]"), format!("Duplicate value: {item}")));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let key_of = |item: &Value| keys.iter().map(|k| item[*k].clone()).collect::<Vec<_>>();
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].iter().any(|other| key_of(other) == key_of(item)) {
                            causes.push((
                                format!("{path}[{i}]"),
                                format!("Duplicate value: {}", Value::from(key_of(item))),
                            ));
                        }
                    }
                }
                _ => {}
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(fields) => check_object(schema, fields, path, causes),
        _ => {}
    }
}

fn check_object(schema: &Value, fields: &Map<String, Value>, path: &str, causes: &mut Vec<(String, String)>) {
    for name in required(schema) {
        if !fields.contains_key(name) {
            causes.push((format!("{path}.{name}"), "Required value".into()));
        }
    }
    let properties = schema["properties"].as_object();
    for (name, value) in fields {
        let sub = properties
            .and_then(|p| p.get(name))
            .or_else(|| schema.get("additionalProperties").filter(|a| a.is_object()));
        if let Some(sub) = sub {
            check(sub, value, &format!("{path}.{name}"), causes);
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["port"],
                    "properties": {
                        "port": {"type": "integer", "minimum": 1, "maximum": 100},
                        "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
                        "names": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}, "x-kubernetes-list-type": "set"},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "size": {"x-kubernetes-int-or-string": true},
                    },
                    "x-kubernetes-validations": [{"rule": "self.port != 13", "message": "unlucky"}],
                }
            }
        })
    }

    fn causes(object: Value) -> Vec<(String, String)> {
        let mut object = object;
        admit(&schema(), &mut object, None).err().unwrap_or_default()
    }

    #[test]
    fn defaults_and_pruning() {
        let mut object = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"port": 5, "unknown": 1, "free": {"anything": {"goes": true}}}, "extra": 1});
        admit(&schema(), &mut object, None).unwrap();
        assert_eq!(object["spec"]["mode"], "a");
        assert!(object["spec"].get("unknown").is_none() && object.get("extra").is_none());
        assert_eq!(object["spec"]["free"]["anything"]["goes"], true);
        assert_eq!(object["metadata"]["name"], "n");
    }

    #[test]
    fn structural_failures_name_their_fields() {
        let found =
            causes(json!({"spec": {"port": 500, "mode": "c", "names": ["ok", "Bad", "ok"], "size": true}}));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.mode",
                "spec.names[2]",
                "spec.names[1]",
                "spec.port",
                "spec.size"
            ],
            "{found:?}"
        );
        assert!(causes(json!({"spec": {}}))[0].0 == "spec.port");
        assert!(
            causes(json!({"spec": {"port": "x"}}))[0]
                .1
                .contains("must be of type integer")
        );
    }

    #[test]
    fn cel_rules_run_after_the_schema() {
        let found = causes(json!({"spec": {"port": 13}}));
        assert_eq!(found.len(), 1);
        assert!(found[0].1.contains("unlucky"), "{found:?}");
    }
}
