//! The PATCH formats the API server accepts: JSON merge patch (RFC 7386, also used here for
//! strategic merge patch and for server-side apply) and JSON patch (RFC 6902).
//!
//! This exists because kube's `Patch::Merge` / `Patch::Strategic` / `Patch::Json` / `Patch::Apply`
//! all arrive as PATCH requests that differ only in their `Content-Type`.

use serde_json::{Map, Value};

/// Which patch format a PATCH request carries, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchFormat {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`, treated as a merge patch (lists are replaced
    /// whole rather than merged by key).
    StrategicMerge,
    /// `application/apply-patch+yaml` (kube sends JSON, which is YAML), treated as a merge patch
    /// that may also create the object.
    Apply,
    /// `application/json-patch+json`
    Json,
}

impl PatchFormat {
    /// The format for a `Content-Type` header value, if it is a patch type.
    pub fn from_content_type(content_type: &str) -> Option<PatchFormat> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence {
            "application/merge-patch+json" => Some(PatchFormat::Merge),
            "application/strategic-merge-patch+json" => Some(PatchFormat::StrategicMerge),
            "application/apply-patch+yaml" => Some(PatchFormat::Apply),
            "application/json-patch+json" => Some(PatchFormat::Json),
            _ => None,
        }
    }

    /// Applies `patch` in this format to `target`.
    pub fn apply(self, target: &mut Value, patch: &Value) -> Result<(), String> {
        match self {
            PatchFormat::Merge | PatchFormat::StrategicMerge | PatchFormat::Apply => {
                merge_patch(target, patch);
                Ok(())
            }
            PatchFormat::Json => json_patch(target, patch),
        }
    }
}

/// RFC 7386: objects merge recursively, `null` deletes a member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in members {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// RFC 6902: a list of `add`/`remove`/`replace`/`move`/`copy`/`test` operations, applied in order
/// and all-or-nothing.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops = patch
        .as_array()
        .ok_or("a JSON patch must be an array of operations")?;
    let mut result = target.clone();
    for op in ops {
        let field = |name: &str| -> Result<Vec<String>, String> {
            let text = op
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("operation {op} lacks a string {name:?}"))?;
            parse_pointer(text)
        };
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| format!("operation {op} lacks \"value\""))
        };
        match op.get("op").and_then(Value::as_str) {
            Some("add") => add(&mut result, &field("path")?, value()?)?,
            Some("remove") => {
                remove(&mut result, &field("path")?)?;
            }
            Some("replace") => {
                let path = field("path")?;
                remove(&mut result, &path)?;
                add(&mut result, &path, value()?)?;
            }
            Some("move") => {
                let moved = remove(&mut result, &field("from")?)?;
                add(&mut result, &field("path")?, moved)?;
            }
            Some("copy") => {
                let copied = get(&result, &field("from")?)?.clone();
                add(&mut result, &field("path")?, copied)?;
            }
            Some("test") => {
                if *get(&result, &field("path")?)? != value()? {
                    return Err(format!("test operation {op} failed"));
                }
            }
            _ => return Err(format!("unknown JSON patch operation {op}")),
        }
    }
    *target = result;
    Ok(())
}

/// Splits a JSON pointer (RFC 6901) into unescaped reference tokens.
fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("JSON pointer {pointer:?} must start with '/'"))?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn get<'v>(value: &'v Value, path: &[String]) -> Result<&'v Value, String> {
    path.iter()
        .try_fold(value, |v, token| match v {
            Value::Object(map) => map.get(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
        .ok_or_else(|| format!("path /{} does not exist", path.join("/")))
}

fn parent<'v>(value: &'v mut Value, path: &[String]) -> Result<(&'v mut Value, String), String> {
    let (last, init) = path
        .split_last()
        .ok_or("the whole document cannot be the target here")?;
    let mut current = value;
    for token in init {
        current = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path /{} does not exist", init.join("/")))?;
    }
    Ok((current, last.clone()))
}

fn add(value: &mut Value, path: &[String], new: Value) -> Result<(), String> {
    if path.is_empty() {
        *value = new;
        return Ok(());
    }
    let (parent, last) = parent(value, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, new);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                items.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= items.len())
                    .ok_or_else(|| format!("invalid array index {last:?}"))?
            };
            items.insert(index, new);
            Ok(())
        }
        _ => Err(format!("cannot add below a scalar at /{}", path.join("/"))),
    }
}

fn remove(value: &mut Value, path: &[String]) -> Result<Value, String> {
    let missing = || format!("path /{} does not exist", path.join("/"));
    let (parent, last) = parent(value, path)?;
    match parent {
        Value::Object(map) => map.remove(&last).ok_or_else(missing),
        Value::Array(items) => {
            let index = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < items.len())
                .ok_or_else(missing)?;
            Ok(items.remove(index))
        }
        _ => Err(missing()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(
            &mut doc,
            &json!({"a": "z", "c": {"f": null, "h": 1}, "l": [3], "n": {"x": null}}),
        );
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e", "h": 1}, "l": [3], "n": {}})
        );
        let mut scalar = json!("x");
        merge_patch(&mut scalar, &json!({"a": 1}));
        assert_eq!(scalar, json!({"a": 1}));
    }

    #[test]
    fn json_patch_operations() {
        let mut doc = json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 2]});
        json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "replace", "path": "/metadata/labels/a", "value": "3"},
                {"op": "add", "path": "/list/-", "value": 9},
                {"op": "add", "path": "/list/0", "value": 0},
                {"op": "remove", "path": "/list/1"},
                {"op": "copy", "from": "/list/0", "path": "/first"},
                {"op": "move", "from": "/first", "path": "/moved"},
                {"op": "test", "path": "/moved", "value": 0},
            ]),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({"metadata": {"labels": {"a": "3", "b/c": "2"}}, "list": [0, 2, 9], "moved": 0})
        );
    }

    #[test]
    fn failed_json_patch_changes_nothing() {
        let mut doc = json!({"a": 1});
        let err = json_patch(
            &mut doc,
            &json!([
                {"op": "add", "path": "/b", "value": 2},
                {"op": "test", "path": "/a", "value": 2},
            ]),
        );
        assert!(err.is_err());
        assert_eq!(doc, json!({"a": 1}));
        assert!(json_patch(&mut doc, &json!([{"op": "remove", "path": "/zz"}])).is_err());
        assert!(json_patch(&mut doc, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchFormat::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchFormat::Merge)
        );
        assert_eq!(
            PatchFormat::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchFormat::StrategicMerge)
        );
        assert_eq!(PatchFormat::from_content_type("application/json"), None);
    }
}
