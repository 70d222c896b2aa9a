//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 description of the API. Schemas are generated
//! (schemars, JSON Schema 2020-12 — OpenAPI 3.1's dialect) from the same types the handlers
//! serialize; the operation table below names those types.

use axum::Json;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::model::*;

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    tag: &'static str,
    params: &'static [Param],
    body: Option<&'static str>,
    ok: (u16, Option<&'static str>),
    errors: &'static [u16],
}

struct Param {
    name: &'static str,
    location: &'static str,
    description: &'static str,
    schema: &'static str,
}

const fn path(name: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "path",
        description,
        schema: "string",
    }
}
const fn query(name: &'static str, description: &'static str, schema: &'static str) -> Param {
    Param {
        name,
        location: "query",
        description,
        schema,
    }
}

const OPS: &[Op] = &[
    Op {
        method: "get",
        path: "/stories",
        id: "listStories",
        summary: "Stories the server has loaded",
        tag: "stories",
        params: &[],
        body: None,
        ok: (200, Some("StoryList")),
        errors: &[],
    },
    Op {
        method: "get",
        path: "/stories/{name}",
        id: "showStory",
        summary: "One story with its agents",
        tag: "stories",
        params: &[path("name", "Story name")],
        body: None,
        ok: (200, Some("StoryDetail")),
        errors: &[404],
    },
    Op {
        method: "post",
        path: "/stories/{name}/enable",
        id: "enableStory",
        summary: "Let a story take events",
        tag: "stories",
        params: &[path("name", "Story name")],
        body: None,
        ok: (200, Some("StorySwitched")),
        errors: &[404],
    },
    Op {
        method: "post",
        path: "/stories/{name}/disable",
        id: "disableStory",
        summary: "Refuse a story's events",
        tag: "stories",
        params: &[path("name", "Story name")],
        body: None,
        ok: (200, Some("StorySwitched")),
        errors: &[404],
    },
    Op {
        method: "post",
        path: "/stories/{name}/agents/{agent}/trigger",
        id: "trigger",
        summary: "Store the event a webhook agent would emit for a POST of this JSON body",
        tag: "stories",
        params: &[
            path("name", "Story name"),
            path("agent", "Webhook agent name"),
        ],
        body: Some("any"),
        ok: (202, Some("Accepted")),
        errors: &[400, 404, 409, 413, 503],
    },
    Op {
        method: "get",
        path: "/runs",
        id: "listRuns",
        summary: "Runs, newest first (keyset-paginated)",
        tag: "runs",
        params: &[
            query("story", "Only this story", "string"),
            query("status", "running, succeeded or failed", "string"),
            query("before", "Runs older than this run id", "string"),
            query("limit", "Page size, 1-1000", "integer"),
        ],
        body: None,
        ok: (200, Some("RunsPage")),
        errors: &[400],
    },
    Op {
        method: "get",
        path: "/runs/{id}",
        id: "showRun",
        summary: "A run with its events and jobs",
        tag: "runs",
        params: &[path("id", "Run id")],
        body: None,
        ok: (200, Some("RunDetail")),
        errors: &[400, 404],
    },
    Op {
        method: "get",
        path: "/events",
        id: "listEvents",
        summary: "Events after a sequence number",
        tag: "events",
        params: &[
            query("after", "Sequence number", "integer"),
            query("story", "Only this story", "string"),
            query("limit", "Page size", "integer"),
        ],
        body: None,
        ok: (200, Some("EventsPage")),
        errors: &[],
    },
    Op {
        method: "get",
        path: "/events/{id}",
        id: "showEvent",
        summary: "One event",
        tag: "events",
        params: &[path("id", "Event id")],
        body: None,
        ok: (200, Some("Event")),
        errors: &[400, 404],
    },
    Op {
        method: "post",
        path: "/events/{id}/replay",
        id: "replayEvent",
        summary: "Re-deliver an event to its downstream agents",
        tag: "events",
        params: &[path("id", "Event id")],
        body: None,
        ok: (202, Some("ReplayAccepted")),
        errors: &[400, 404, 409],
    },
    Op {
        method: "get",
        path: "/resources",
        id: "listResources",
        summary: "Shared values for templates",
        tag: "resources",
        params: &[],
        body: None,
        ok: (200, Some("ResourceList")),
        errors: &[],
    },
    Op {
        method: "get",
        path: "/resources/{name}",
        id: "getResource",
        summary: "One shared value",
        tag: "resources",
        params: &[path("name", "Resource name")],
        body: None,
        ok: (200, Some("ResourceValue")),
        errors: &[404],
    },
    Op {
        method: "put",
        path: "/resources/{name}",
        id: "setResource",
        summary: "Set a shared value",
        tag: "resources",
        params: &[path("name", "Resource name")],
        body: Some("SetResource"),
        ok: (204, None),
        errors: &[400],
    },
    Op {
        method: "delete",
        path: "/resources/{name}",
        id: "deleteResource",
        summary: "Remove a shared value",
        tag: "resources",
        params: &[path("name", "Resource name")],
        body: None,
        ok: (204, None),
        errors: &[404],
    },
    Op {
        method: "get",
        path: "/credentials",
        id: "listCredentials",
        summary: "Credentials: names, allowed hosts, key ids and dates, never values",
        tag: "security",
        params: &[],
        body: None,
        ok: (200, Some("CredentialList")),
        errors: &[503],
    },
    Op {
        method: "put",
        path: "/credentials/{name}",
        id: "setCredential",
        summary: "Store a credential, encrypted under the master key",
        tag: "security",
        params: &[path("name", "Credential name (letters, digits, `_`)")],
        body: Some("SetCredential"),
        ok: (204, None),
        errors: &[400, 409, 503],
    },
    Op {
        method: "delete",
        path: "/credentials/{name}",
        id: "deleteCredential",
        summary: "Remove a credential",
        tag: "security",
        params: &[path("name", "Credential name")],
        body: None,
        ok: (204, None),
        errors: &[404, 503],
    },
    Op {
        method: "post",
        path: "/credentials/rotate-key",
        id: "rotateKey",
        summary: "Re-encrypt every credential under a new master key, in one transaction",
        tag: "security",
        params: &[],
        body: Some("RotateKey?"),
        ok: (200, Some("KeyRotated")),
        errors: &[400, 409, 503],
    },
    Op {
        method: "get",
        path: "/tokens",
        id: "listTokens",
        summary: "API tokens: ids, names, roles and dates, never the tokens",
        tag: "security",
        params: &[],
        body: None,
        ok: (200, Some("TokenList")),
        errors: &[503],
    },
    Op {
        method: "post",
        path: "/tokens",
        id: "createToken",
        summary: "Create an API token; the answer is the only place it is ever shown",
        tag: "security",
        params: &[],
        body: Some("NewToken"),
        ok: (201, Some("TokenCreated")),
        errors: &[400, 503],
    },
    Op {
        method: "delete",
        path: "/tokens/{id}",
        id: "revokeToken",
        summary: "Revoke a token by id, or every active token with this name",
        tag: "security",
        params: &[path("id", "Token id (`tok_…`) or name")],
        body: None,
        ok: (204, None),
        errors: &[404, 503],
    },
    Op {
        method: "get",
        path: "/audit",
        id: "listAudit",
        summary: "Calls that changed something (and refused attempts), newest first",
        tag: "security",
        params: &[
            query(
                "before",
                "Entries older than this sequence number",
                "integer",
            ),
            query("limit", "Page size, 1-1000", "integer"),
        ],
        body: None,
        ok: (200, Some("AuditPage")),
        errors: &[400, 503],
    },
    Op {
        method: "get",
        path: "/whoami",
        id: "whoami",
        summary: "The caller's token name and role",
        tag: "security",
        params: &[],
        body: None,
        ok: (200, Some("WhoAmI")),
        errors: &[],
    },
    Op {
        method: "get",
        path: "/actions",
        id: "listActions",
        summary: "The loaded pack actions, and their packs",
        tag: "actions",
        params: &[],
        body: None,
        ok: (200, Some("ActionList")),
        errors: &[],
    },
    Op {
        method: "get",
        path: "/actions/{ref}",
        id: "showAction",
        summary: "One action: its parameters (types, defaults, descriptions) and its pack",
        tag: "actions",
        params: &[path("ref", "PACK.ACTION")],
        body: None,
        ok: (200, Some("ActionDetail")),
        errors: &[404],
    },
    Op {
        method: "post",
        path: "/actions/{ref}/run",
        id: "runAction",
        summary: "Run an action: the parameters are checked against its schema before anything runs; the run is an ordinary run of the story PACK.ACTION",
        tag: "actions",
        params: &[path("ref", "PACK.ACTION")],
        body: Some("RunAction"),
        ok: (202, Some("ActionAccepted")),
        errors: &[400, 404, 409, 413, 503],
    },
];

/// Error answers whose body says more than `ErrorBody`: (operation id, status, schema).
const ERROR_SCHEMAS: &[(&str, u16, &str)] = &[("runAction", 400, "InvalidParamsBody")];

fn add<T: JsonSchema>(
    generator: &mut SchemaGenerator,
    schemas: &mut Map<String, Value>,
    name: &str,
) {
    let schema = generator.root_schema_for::<T>().to_value();
    let mut schema = schema;
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        let defs = match obj.remove("components") {
            Some(Value::Object(mut c)) => c.remove("schemas"),
            _ => obj.remove("$defs"),
        };
        if let Some(Value::Object(defs)) = defs {
            for (k, v) in defs {
                schemas.entry(k).or_insert(v);
            }
        }
    }
    schemas.insert(name.to_string(), schema);
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        202 => "Accepted: stored durably",
        204 => "Done",
        400 => "Bad request",
        401 => "Missing or invalid token",
        403 => "The token's role may not do this",
        404 => "Not found",
        409 => "Conflict (story disabled, agent gone, no master key)",
        413 => "Payload too large",
        503 => "Store unavailable or overloaded; retry",
        _ => "Error",
    }
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "#/components/schemas/".into();
    let mut generator = settings.into_generator();
    let mut schemas = Map::new();
    add::<StoryList>(&mut generator, &mut schemas, "StoryList");
    add::<StoryDetail>(&mut generator, &mut schemas, "StoryDetail");
    add::<StorySwitched>(&mut generator, &mut schemas, "StorySwitched");
    add::<Accepted>(&mut generator, &mut schemas, "Accepted");
    add::<RunsPage>(&mut generator, &mut schemas, "RunsPage");
    add::<RunDetail>(&mut generator, &mut schemas, "RunDetail");
    add::<EventsPage>(&mut generator, &mut schemas, "EventsPage");
    add::<switchyard_types::Event>(&mut generator, &mut schemas, "Event");
    add::<ReplayAccepted>(&mut generator, &mut schemas, "ReplayAccepted");
    add::<ResourceList>(&mut generator, &mut schemas, "ResourceList");
    add::<ResourceValue>(&mut generator, &mut schemas, "ResourceValue");
    add::<SetResource>(&mut generator, &mut schemas, "SetResource");
    add::<CredentialList>(&mut generator, &mut schemas, "CredentialList");
    add::<SetCredential>(&mut generator, &mut schemas, "SetCredential");
    add::<RotateKey>(&mut generator, &mut schemas, "RotateKey");
    add::<KeyRotated>(&mut generator, &mut schemas, "KeyRotated");
    add::<TokenList>(&mut generator, &mut schemas, "TokenList");
    add::<NewToken>(&mut generator, &mut schemas, "NewToken");
    add::<TokenCreated>(&mut generator, &mut schemas, "TokenCreated");
    add::<AuditPage>(&mut generator, &mut schemas, "AuditPage");
    add::<WhoAmI>(&mut generator, &mut schemas, "WhoAmI");
    add::<ErrorBody>(&mut generator, &mut schemas, "ErrorBody");
    add::<ActionList>(&mut generator, &mut schemas, "ActionList");
    add::<ActionDetail>(&mut generator, &mut schemas, "ActionDetail");
    add::<RunAction>(&mut generator, &mut schemas, "RunAction");
    add::<ActionAccepted>(&mut generator, &mut schemas, "ActionAccepted");
    add::<InvalidParamsBody>(&mut generator, &mut schemas, "InvalidParamsBody");

    let mut paths = Map::new();
    for op in OPS {
        let method = axum::http::Method::from_bytes(op.method.to_ascii_uppercase().as_bytes())
            .unwrap_or(axum::http::Method::GET);
        let role = crate::auth::required_role(&method, op.path);
        let mut operation = json!({
            "operationId": op.id,
            "summary": op.summary,
            "description": format!(
                "Needs a bearer token with the role `{}` or higher (401 without a valid token, 403 when its role is lower); \
                 a server on loopback with no token created takes calls without one.",
                role.as_str()
            ),
            "tags": [op.tag],
            "responses": {},
        });
        let params: Vec<Value> = op
            .params
            .iter()
            .map(|p| json!({"name": p.name, "in": p.location, "required": p.location == "path", "description": p.description, "schema": {"type": p.schema}}))
            .collect();
        if !params.is_empty() {
            operation["parameters"] = Value::Array(params);
        }
        if let Some(body) = op.body {
            // `any`: any JSON value; a trailing `?`: the body may be left out.
            let (name, optional) = match body.strip_suffix('?') {
                Some(name) => (name, true),
                None => (body, body == "any"),
            };
            let schema = if name == "any" {
                json!({})
            } else {
                json!({"$ref": format!("#/components/schemas/{name}")})
            };
            operation["requestBody"] =
                json!({"required": !optional, "content": {"application/json": {"schema": schema}}});
        }
        let mut responses = Map::new();
        let (code, schema) = op.ok;
        let mut ok = json!({"description": status_text(code)});
        if let Some(s) = schema {
            ok["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{s}")}}});
        }
        responses.insert(code.to_string(), ok);
        for &e in op.errors.iter().chain(&[401, 403]) {
            let body = ERROR_SCHEMAS
                .iter()
                .find(|(id, code, _)| *id == op.id && *code == e)
                .map_or("ErrorBody", |(_, _, schema)| schema);
            responses.insert(
                e.to_string(),
                json!({"description": status_text(e), "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}}),
            );
        }
        operation["responses"] = Value::Object(responses);
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchyard API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API behind the `switchyard` CLI. Errors are `{\"error\": {\"code\", \"message\"}}`.",
        },
        "servers": [{"url": "/api/v1"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": "stories", "description": "Loaded stories; trigger a webhook agent"},
            {"name": "runs", "description": "Run history"},
            {"name": "events", "description": "Events; replay"},
            {"name": "resources", "description": "Shared values for templates"},
            {"name": "security", "description": "Credentials, API tokens, the audit log"},
        ],
        "paths": paths,
    })
}

/// `GET /api/v1/openapi.json`.
pub async fn serve() -> Json<Value> {
    Json(document())
}
