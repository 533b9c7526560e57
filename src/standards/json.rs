//! Typed access to the JSON fields of a body. A value of the wrong type is a
//! 400: dockerd's decoder would refuse it too, and a rule must never guess.
//!
//! Keys are looked up by their exact name: [`super::canon`] has already
//! renamed every key the rules read to dockerd's spelling. `at` is the path
//! of `object` in the body (`HostConfig.`), for error messages.

use serde_json::{Map, Value};

use super::canon::kind;
use super::BadRequest;

pub(super) fn int(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<i64>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_i64()
            .map(Some)
            .ok_or_else(|| BadRequest::new(format!("invalid body: {at}{key} must be an integer, got {number}"))),
        Some(other) => Err(wrong_type(at, key, "an integer", other)),
    }
}

pub(super) fn boolean(object: &Map<String, Value>, key: &str, at: &str) -> Result<Option<bool>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(other) => Err(wrong_type(at, key, "a boolean", other)),
    }
}

pub(super) fn string<'v>(object: &'v Map<String, Value>, key: &str, at: &str) -> Result<Option<&'v str>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(other) => Err(wrong_type(at, key, "a string", other)),
    }
}

/// An array of strings; null and absent are empty.
pub(super) fn strings<'v>(object: &'v Map<String, Value>, key: &str, at: &str) -> Result<Vec<&'v str>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str()
                    .ok_or_else(|| wrong_type(at, &format!("{key}[{i}]"), "a string", item))
            })
            .collect(),
        Some(other) => Err(wrong_type(at, key, "an array of strings", other)),
    }
}

/// An array of anything; null and absent are empty.
pub(super) fn array<'v>(object: &'v Map<String, Value>, key: &str, at: &str) -> Result<&'v [Value], BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(wrong_type(at, key, "an array", other)),
    }
}

pub(super) fn object<'v>(
    object: &'v Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<Option<&'v Map<String, Value>>, BadRequest> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(inner)) => Ok(Some(inner)),
        Some(other) => Err(wrong_type(at, key, "an object", other)),
    }
}

/// The object at `key`, created (or replacing null) when missing.
pub(super) fn object_mut<'v>(
    object: &'v mut Map<String, Value>,
    key: &str,
    at: &str,
) -> Result<&'v mut Map<String, Value>, BadRequest> {
    let slot = object.entry(key.to_string()).or_insert(Value::Null);
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    match slot {
        Value::Object(inner) => Ok(inner),
        other => Err(wrong_type(at, key, "an object", other)),
    }
}

fn wrong_type(at: &str, key: &str, expected: &str, got: &Value) -> BadRequest {
    BadRequest::new(format!("invalid body: {at}{key} must be {expected}, got {}", kind(got)))
}

/// Appends to an array of strings that the caller has already checked is an
/// array or null/absent.
pub(super) fn append_strings(object: &mut Map<String, Value>, key: &str, items: &[String]) {
    let slot = object.entry(key.to_string()).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(list) = slot {
        list.extend(items.iter().cloned().map(Value::String));
    }
}
