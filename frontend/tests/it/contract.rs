//! The front end's copies of the back end's types against `backend/openapi.json` (which the
//! back end's own test pins to its code): every field a copy sends or reads must be in the
//! schema it mirrors with the same JSON type, and a body holding only the schema's required
//! fields must parse into the copy — so a renamed, retyped or newly optional field on either
//! side fails here rather than on a live page.

use frontend::backend_client::{CallerAuthSeen, CallerSeen, Item, NewItem};
use hosting::Instance;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

const OPENAPI: &str = include_str!("../../../backend/openapi.json");

fn schemas() -> Map<String, Value> {
    let doc: Value = serde_json::from_str(OPENAPI).expect("backend/openapi.json parses");
    doc["components"]["schemas"]
        .as_object()
        .expect("the document has component schemas")
        .clone()
}

/// Follows `$ref` (and a `oneOf` of null and one `$ref`, utoipa's spelling of `Option<T>`).
fn resolve<'a>(schemas: &'a Map<String, Value>, schema: &'a Value) -> Vec<&'a Value> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let target = schemas
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name}"));
        return resolve(schemas, target);
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        return choices.iter().flat_map(|c| resolve(schemas, c)).collect();
    }
    vec![schema]
}

/// The JSON types a schema allows (`integer` counts as `number`).
fn json_types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        // No type: an object schema written with properties only.
        _ => vec!["object"],
    }
    .into_iter()
    .map(|t| if t == "integer" { "number" } else { t })
    .collect()
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every field of `value` (the front end's copy, serialised) must be in `schema` with the same
/// JSON type, recursively. Returns what does not match, by path.
fn mismatches(
    schemas: &Map<String, Value>,
    schema: &Value,
    value: &Value,
    at: &str,
) -> Vec<String> {
    let candidates = resolve(schemas, schema);
    let kind = type_of(value);
    let Some(schema) = candidates
        .iter()
        .find(|s| json_types(s).contains(&kind))
        .copied()
    else {
        let allowed: Vec<_> = candidates.iter().flat_map(|s| json_types(s)).collect();
        return vec![format!(
            "{at}: the front end has a {kind}, the schema allows {allowed:?}"
        )];
    };
    match value {
        Value::Object(fields) => fields
            .iter()
            .flat_map(|(name, field)| match schema["properties"].get(name) {
                Some(property) => mismatches(schemas, property, field, &format!("{at}.{name}")),
                None => vec![format!("{at}.{name}: not in the back end's schema")],
            })
            .collect(),
        Value::Array(elements) => elements
            .iter()
            .flat_map(|element| mismatches(schemas, &schema["items"], element, &format!("{at}[]")))
            .collect(),
        _ => Vec::new(),
    }
}

/// A body with only the required fields of `schema`, each with a value of its type.
fn minimal(schemas: &Map<String, Value>, schema: &Value) -> Value {
    let schema = resolve(schemas, schema)
        .into_iter()
        .find(|s| !json_types(s).contains(&"null"))
        .expect("a required field is not only null");
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match json_types(schema)[0] {
        "string" => json!("2026-01-01T00:00:00Z"),
        "boolean" => json!(true),
        "number" => json!(1),
        "array" => json!([]),
        _ => {
            let mut object = Map::new();
            for name in schema["required"].as_array().into_iter().flatten() {
                let name = name.as_str().unwrap();
                object.insert(name.into(), minimal(schemas, &schema["properties"][name]));
            }
            Value::Object(object)
        }
    }
}

/// Checks one copy: `full` sets every field it has (options `Some`, lists non-empty).
fn check<T: Serialize + DeserializeOwned>(schema_name: &str, full: &T) -> Vec<String> {
    let schemas = schemas();
    let schema = schemas
        .get(schema_name)
        .unwrap_or_else(|| panic!("the back end has no schema {schema_name}"));
    let mut problems = mismatches(
        &schemas,
        schema,
        &serde_json::to_value(full).unwrap(),
        schema_name,
    );
    let body = minimal(&schemas, schema);
    if let Err(error) = serde_json::from_value::<T>(body.clone()) {
        problems.push(format!(
            "{schema_name}: the back end's required fields alone ({body}) do not parse: {error}"
        ));
    }
    problems
}

fn auth_seen() -> CallerAuthSeen {
    CallerAuthSeen {
        mode: "entra".into(),
        app_id: Some("app".into()),
        object_id: Some("object".into()),
        roles: vec!["Items.ReadWrite".into()],
        token_version: Some("2.0".into()),
    }
}

#[test]
fn the_front_ends_copies_match_the_back_ends_schemas() {
    let item = Item {
        id: "0190a6a0-0000-7000-8000-000000000000".into(),
        name: "milk".into(),
        note: Some("two".into()),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    let new_item = NewItem {
        name: "milk".into(),
        note: Some("two".into()),
    };
    let caller = CallerSeen {
        client_ip: "10.0.1.4".into(),
        source: "x-client-ip".into(),
        peer: "10.0.1.4:50000".into(), // a value to serialise and parse back, never connected to
        class: "private".into(),
        allowed: true,
        auth: Some(auth_seen()),
        instance: Instance {
            site: "app-be".into(),
            id: "be-1".into(),
        },
    };
    let mut problems = check("Item", &item);
    problems.extend(check("NewItem", &new_item));
    problems.extend(check("CallerView", &caller));
    problems.extend(check("CallerAuth", &auth_seen()));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Asserts that checking `copy` against `schema_name` reports a problem containing every needle.
fn assert_caught<T: Serialize + DeserializeOwned>(schema_name: &str, copy: &T, needles: &[&str]) {
    let problems = check(schema_name, copy);
    assert!(
        problems
            .iter()
            .any(|p| needles.iter().all(|needle| p.contains(needle))),
        "{needles:?} not in {problems:#?}"
    );
}

/// The checks themselves fail on a copy that drifted: a renamed field, a field of another type,
/// and a field the back end may leave out but the copy requires.
#[test]
fn a_copy_that_drifted_is_caught() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Renamed {
        id: String,
        title: String,
    }
    let renamed = Renamed {
        id: "x".into(),
        title: "milk".into(),
    };
    assert_caught("Item", &renamed, &["Item.title: not in"]);

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Retyped {
        allowed: String,
    }
    let retyped = Retyped {
        allowed: "yes".into(),
    };
    assert_caught(
        "CallerView",
        &retyped,
        &["CallerView.allowed: the front end has a string"],
    );

    #[derive(serde::Serialize, serde::Deserialize)]
    struct NoteRequired {
        name: String,
        note: String,
    }
    let note_required = NoteRequired {
        name: "milk".into(),
        note: "two".into(),
    };
    assert_caught(
        "NewItem",
        &note_required,
        &["required fields alone", "missing field `note`"],
    );
}
