//! The OpenAPI document as users get it: poem-openapi's, completed from the job registry.
//!
//! poem-openapi knows the types compiled into the API; the registry knows which job kinds this
//! service runs (the built-ins plus whatever an embedding application registered). The
//! document gets, from the registry:
//! - `JobKind`: the enum of kinds, used by `Job.kind` and the `kind` filter of `GET /jobs`;
//! - `JobErrorCode`: the enum of job error codes, used by `Job.error.code`;
//! - `NewJobRequest`: one variant per argument-only kind, discriminated by `kind`, each with
//!   the exact JSON Schema of its arguments (from the kind's `Args` type).
//!
//! `GET /openapi.json`, `/docs` and `offload openapi` all serve this one document, and the
//! committed `openapi/openapi.json` must equal it (a test checks).

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::jobs::Registry;

/// The complete document, pretty-printed JSON.
pub fn document(registry: &Registry) -> String {
    let mut doc: Value =
        serde_json::from_str(&super::service().spec()).expect("poem-openapi writes JSON");
    complete(&mut doc, registry);
    describe_guards(&mut doc);
    simplify_refs(&mut doc);
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

/// `(path template, methods)` of every operation, for `Allow` headers on 405 answers.
pub fn allowed_methods(spec: &str) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(spec).expect("the document is JSON");
    let mut out: Vec<(String, String)> = doc["paths"]
        .as_object()
        .map(|paths| {
            paths
                .iter()
                .map(|(path, ops)| {
                    let methods: Vec<String> = ops
                        .as_object()
                        .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                        .unwrap_or_default();
                    (path.clone(), methods.join(", "))
                })
                .collect()
        })
        .unwrap_or_default();
    out.push(("/docs".into(), "GET".into()));
    out.push(("/openapi.json".into(), "GET".into()));
    out
}

/// Whether `path` matches a template like `/api/v1/jobs/{id}`.
pub fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// Swagger UI's page over `spec` (poem-openapi's page, with our completed document inlined).
pub fn swagger_ui_html(spec: &str) -> String {
    let service = super::service();
    service.swagger_ui_html().replacen(&service.spec(), spec, 1)
}

fn schemas(doc: &mut Value) -> &mut Map<String, Value> {
    doc.pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .expect("the document has component schemas")
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

/// What the middleware in front of the operations can answer: 401 (API keys), 408 (time
/// limit), 413 (body size), 429 with `Retry-After` (queue cap, upload rate) — and the
/// optional bearer scheme Swagger UI offers.
fn describe_guards(doc: &mut Value) {
    doc["components"]["securitySchemes"] = json!({
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "Needed when the service runs with API_KEYS: `Authorization: Bearer <key>`.",
        }
    });
    // Either the key, or nothing (a service without API_KEYS).
    doc["security"] = json!([{"apiKey": []}, {}]);
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, ops) in paths.iter_mut() {
        let probe = path == "/healthz" || path == "/readyz";
        for (_, op) in ops.as_object_mut().into_iter().flatten() {
            let id = op["operationId"].as_str().unwrap_or_default().to_string();
            let responses = &mut op["responses"];
            if probe {
                op["security"] = json!([]);
                continue;
            }
            responses["401"] = error_response("An API key is required (`code`: `unauthorized`).");
            responses["408"] = error_response(
                "The request took longer than the service allows (`request_timeout`).",
            );
            if matches!(id.as_str(), "create_job" | "create_jobs_batch") {
                responses["413"] = error_response("The JSON body is larger than `MAX_JSON_BYTES`.");
            }
            if matches!(
                id.as_str(),
                "create_export" | "create_job" | "create_jobs_batch"
            ) {
                let mut too_many = error_response(
                    "Too many jobs are queued (`MAX_QUEUED_JOBS`), or this client uploads too fast (`UPLOADS_PER_MINUTE`); `code`: `overloaded`.",
                );
                too_many["headers"] = json!({
                    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
                });
                responses["429"] = too_many;
            }
        }
    }
}

/// `allOf: [{$ref}, {description}]` (how poem-openapi documents a field of a named type)
/// becomes a plain `$ref` with the description beside it: same meaning, and client generators
/// that cannot take `allOf` of a non-object (openapi-python-client) can read it.
fn simplify_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let single_ref = map
                .get("allOf")
                .and_then(Value::as_array)
                .and_then(|parts| {
                    let refs: Vec<&Value> =
                        parts.iter().filter(|p| p.get("$ref").is_some()).collect();
                    let only_docs = parts.iter().filter(|p| p.get("$ref").is_none()).all(|p| {
                        p.as_object()
                            .is_some_and(|o| o.keys().all(|k| k == "description"))
                    });
                    (refs.len() == 1 && only_docs).then(|| refs[0]["$ref"].clone())
                });
            if let Some(reference) = single_ref {
                map.remove("allOf");
                map.insert("$ref".into(), reference);
            }
            map.values_mut().for_each(simplify_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(simplify_refs),
        _ => {}
    }
}

fn complete(doc: &mut Value, registry: &Registry) {
    let kinds: Vec<Value> = registry.names().into_iter().map(Value::from).collect();
    let codes: Vec<Value> = registry
        .error_codes()
        .into_iter()
        .map(Value::from)
        .collect();
    let new_job = new_job_request(registry, schemas(doc));
    let schemas = schemas(doc);
    schemas.insert(
        "JobKind".into(),
        json!({"type": "string", "enum": kinds, "description": "A job kind this service runs."}),
    );
    schemas.insert(
        "JobErrorCode".into(),
        json!({
            "type": "string", "enum": codes,
            "description": "Why a job (or its last attempt) failed. `document_corrupt`, `document_encrypted`, \
                `document_too_large` and `unsupported_type` mean the upload itself is bad; `timeout`, \
                `converter_crashed` and `storage_unavailable` are retried with backoff.",
        }),
    );
    schemas.insert("NewJobRequest".into(), new_job);
    set_ref(schemas, "/Job/properties/kind", "JobKind");
    set_ref(schemas, "/JobErrorInfo/properties/code", "JobErrorCode");
    // poem-openapi describes an event stream as an array of its items; each server-sent event
    // is an object whose `data` is one Job (one Batch) as JSON.
    for (path, item, what) in [
        (
            "/paths/~1api~1v1~1jobs~1{id}~1events",
            "Job",
            "One server-sent event per change of the job; the stream ends after a final status.",
        ),
        (
            "/paths/~1api~1v1~1batches~1{id}~1events",
            "Batch",
            "One server-sent event per change of the batch's jobs; the stream ends once every \
             job in it has ended.",
        ),
    ] {
        let pointer = format!("{path}/get/responses/200/content/text~1event-stream");
        if let Some(stream) = doc.pointer_mut(&pointer) {
            stream["schema"] = json!({
                "type": "object",
                "required": ["data"],
                "description": what,
                "properties": {
                    "data": {
                        "type": "string",
                        "description": format!("The {} (a `{item}` object) as JSON.", item.to_lowercase()),
                        "contentMediaType": "application/json",
                        "contentSchema": {"$ref": format!("#/components/schemas/{item}")},
                    },
                    "event": {"type": "string"},
                    "id": {"type": "string"},
                    "retry": {"type": "integer"},
                },
            });
        }
    }
    // Request objects refuse fields they do not list (400 naming the field); say so.
    for pointer in [
        "/paths/~1api~1v1~1exports/post/requestBody/content/multipart~1form-data/schema",
        "/components/schemas/BatchRequest",
    ] {
        if let Some(schema) = doc.pointer_mut(pointer) {
            schema["additionalProperties"] = json!(false);
        }
    }
    // Swagger UI pre-fills a form's text fields with their example ("string" when none),
    // which would schedule or call back to nonsense; these optional fields start empty.
    if let Some(form) = doc.pointer_mut(
        "/paths/~1api~1v1~1exports/post/requestBody/content/multipart~1form-data/schema/properties",
    ) {
        for (field, format) in [
            ("run_at", "date-time"),
            ("callback_url", "uri"),
            ("batch_callback_url", "uri"),
        ] {
            if let Some(schema) = form.get_mut(field) {
                schema["format"] = json!(format);
                schema["example"] = json!("");
            }
        }
    }
    if let Some(params) = doc
        .pointer_mut("/paths/~1api~1v1~1jobs/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for p in params.iter_mut().filter(|p| p["name"] == "kind") {
            p["schema"] = json!({"$ref": "#/components/schemas/JobKind"});
        }
    }
}

/// Replaces the schema at `path` (under components.schemas) by a `$ref` to `target`, keeping
/// its description.
fn set_ref(schemas: &mut Map<String, Value>, path: &str, target: &str) {
    let mut holder = Value::Object(std::mem::take(schemas));
    if let Some(slot) = holder.pointer_mut(path) {
        let description = slot.get("description").cloned();
        *slot = json!({"allOf": [{"$ref": format!("#/components/schemas/{target}")}]});
        if let Some(d) = description {
            slot["description"] = d;
        }
    }
    *schemas = match holder {
        Value::Object(map) => map,
        _ => unreachable!("was an object"),
    };
}

/// `NewJobRequest`: `{"kind": K, "args": ArgsOfK}` for every argument-only kind K. Argument
/// types' schemas (and anything they refer to) become components.
fn new_job_request(registry: &Registry, schemas: &mut Map<String, Value>) -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut variants = Vec::new();
    let mut mapping = Map::new();
    for kind in registry
        .iter()
        .filter(|k| !k.takes_upload() && !k.internal())
    {
        let name = format!("NewJob_{}", kind.name());
        let args = kind.args_schema(&mut generator).to_value();
        schemas.insert(
            name.clone(),
            json!({
                "type": "object",
                "title": format!("{} job", kind.name()),
                "required": ["kind"],
                // A field not listed here is refused (400), as are keys its `args` do not list.
                "additionalProperties": false,
                "properties": {
                    "kind": {"type": "string", "enum": [kind.name()]},
                    // `null` and absent both mean "no arguments".
                    "args": {"allOf": [args], "nullable": true},
                    "callback_url": {
                        "type": "string", "format": "uri", "nullable": true,
                        "description": "Where to POST the job (signed) when it ends; needs `WEBHOOK_SECRET` \
                            on the service and a public address (or one `OUTBOUND_ALLOW` names).",
                    },
                    "run_at": {
                        "type": "string", "format": "date-time", "nullable": true,
                        "description": "Run no earlier than this; the job waits in `queued` until then.",
                    },
                },
            }),
        );
        let reference = format!("#/components/schemas/{name}");
        variants.push(json!({"$ref": reference}));
        mapping.insert(kind.name().to_string(), Value::from(reference));
    }
    for (name, schema) in generator.take_definitions(true) {
        schemas.entry(name).or_insert(schema);
    }
    json!({
        "description": "An argument-only job: its `kind` and that kind's `args` (optional when all are).",
        "oneOf": variants,
        "discriminator": {"propertyName": "kind", "mapping": mapping},
    })
}
