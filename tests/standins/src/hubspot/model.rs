//! HubSpot CRM state: records, properties and their checks, associations.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value};

use crate::reply::{is_email, now_rfc3339};

/// The CRM object types the stand-in holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// `contacts` (`0-1`).
    Contacts,
    /// `companies` (`0-2`).
    Companies,
    /// `deals` (`0-3`).
    Deals,
}

impl ObjectType {
    /// Parses a path's object type as HubSpot does: plural or singular name, or type id.
    pub fn parse(s: &str) -> Option<ObjectType> {
        match s.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(ObjectType::Contacts),
            "companies" | "company" | "0-2" => Some(ObjectType::Companies),
            "deals" | "deal" | "0-3" => Some(ObjectType::Deals),
            _ => None,
        }
    }

    /// The plural name, e.g. `contacts`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contacts",
            ObjectType::Companies => "companies",
            ObjectType::Deals => "deals",
        }
    }

    /// The singular name, e.g. `contact`.
    pub fn singular(self) -> &'static str {
        match self {
            ObjectType::Contacts => "contact",
            ObjectType::Companies => "company",
            ObjectType::Deals => "deal",
        }
    }

    /// Properties every record of this type has and may be written.
    fn known(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &[
                "email",
                "firstname",
                "lastname",
                "company",
                "phone",
                "mobilephone",
                "website",
                "jobtitle",
                "lifecyclestage",
                "hs_lead_status",
                "city",
                "state",
                "country",
                "zip",
                "address",
                "message",
                "hubspot_owner_id",
                "industry",
                "annualrevenue",
            ],
            ObjectType::Companies => &[
                "name",
                "domain",
                "city",
                "state",
                "country",
                "industry",
                "phone",
                "website",
                "numberofemployees",
                "annualrevenue",
                "lifecyclestage",
                "hubspot_owner_id",
                "description",
            ],
            ObjectType::Deals => &[
                "dealname",
                "pipeline",
                "dealstage",
                "amount",
                "closedate",
                "dealtype",
                "description",
                "hubspot_owner_id",
            ],
        }
    }

    /// Read-only properties HubSpot sets itself.
    fn read_only(self) -> &'static [&'static str] {
        match self {
            ObjectType::Deals => &["createdate", "hs_lastmodifieddate", "hs_object_id"],
            _ => &["createdate", "lastmodifieddate", "hs_object_id"],
        }
    }

    /// The properties a read returns when none are asked for.
    pub fn default_properties(self) -> &'static [&'static str] {
        match self {
            ObjectType::Contacts => &[
                "createdate",
                "email",
                "firstname",
                "hs_object_id",
                "lastmodifieddate",
                "lastname",
            ],
            ObjectType::Companies => &[
                "createdate",
                "domain",
                "hs_lastmodifieddate",
                "hs_object_id",
                "name",
            ],
            ObjectType::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
        }
    }

    fn modified_property(self) -> &'static str {
        match self {
            ObjectType::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }
}

/// HubSpot's default (unlabeled) association type id from one type to another.
pub(crate) fn default_association_type(from: ObjectType, to: ObjectType) -> Option<u32> {
    use ObjectType::*;
    match (from, to) {
        (Contacts, Companies) => Some(279),
        (Companies, Contacts) => Some(280),
        (Deals, Contacts) => Some(3),
        (Contacts, Deals) => Some(4),
        (Deals, Companies) => Some(341),
        (Companies, Deals) => Some(342),
        _ => None,
    }
}

/// A CRM record.
#[derive(Clone, Debug, Serialize)]
pub struct CrmObject {
    /// Its id (HubSpot ids are strings of digits).
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: ObjectType,
    /// Its properties, as HubSpot stores them: strings.
    pub properties: BTreeMap<String, String>,
    /// Created (RFC 3339).
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// Last updated (RFC 3339).
    #[serde(rename = "updatedAt")]
    pub updated_at: String,
}

impl CrmObject {
    /// A property's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.properties.get(name).map(String::as_str)
    }

    /// The record as the API returns it, with these properties (missing ones null).
    pub(crate) fn to_json(&self, properties: &[String]) -> Value {
        let props: serde_json::Map<String, Value> = properties
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    self.properties.get(p).map_or(Value::Null, |v| json!(v)),
                )
            })
            .collect();
        json!({
            "id": self.id,
            "properties": props,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "archived": false,
        })
    }

    /// The record with every property it has (a create/update answer).
    pub(crate) fn to_json_all(&self) -> Value {
        let names: Vec<String> = self.properties.keys().cloned().collect();
        self.to_json(&names)
    }
}

/// An association between two records.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Association {
    /// The first record's type.
    pub from_type: ObjectType,
    /// The first record's id.
    pub from_id: String,
    /// The second record's type.
    pub to_type: ObjectType,
    /// The second record's id.
    pub to_id: String,
}

#[derive(Default)]
pub(crate) struct HsState {
    next_id: u64,
    pub objects: BTreeMap<u64, CrmObject>,
    pub associations: Vec<Association>,
    pub custom_properties: BTreeMap<ObjectType, BTreeSet<String>>,
}

/// One invalid property, as HubSpot lists them.
pub(crate) struct Invalid {
    pub name: String,
    pub error: &'static str,
    pub message: String,
}

const LIFECYCLE: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
const LEAD_STATUS: &[&str] = &[
    "NEW",
    "OPEN",
    "IN_PROGRESS",
    "OPEN_DEAL",
    "UNQUALIFIED",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "BAD_TIMING",
];
const PIPELINES: &[&str] = &["default"];
const DEAL_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

/// Whether a value is a date HubSpot accepts: `YYYY-MM-DD`, RFC 3339, or epoch milliseconds.
fn is_date(v: &str) -> bool {
    v.parse::<i64>().is_ok()
        || chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
        || chrono::DateTime::parse_from_rfc3339(v).is_ok()
}

impl HsState {
    pub fn insert(
        &mut self,
        kind: ObjectType,
        mut properties: BTreeMap<String, String>,
    ) -> CrmObject {
        self.next_id += 1;
        let id = 51_000 + self.next_id;
        let now = now_rfc3339();
        properties.insert("hs_object_id".into(), id.to_string());
        properties.insert("createdate".into(), now.clone());
        properties.insert(kind.modified_property().into(), now.clone());
        if kind == ObjectType::Deals {
            properties
                .entry("pipeline".into())
                .or_insert_with(|| "default".into());
        }
        if let Some(e) = properties.get_mut("email") {
            *e = e.to_ascii_lowercase();
        }
        let o = CrmObject {
            id: id.to_string(),
            kind,
            properties,
            created_at: now.clone(),
            updated_at: now,
        };
        self.objects.insert(id, o.clone());
        o
    }

    pub fn get(&self, kind: ObjectType, id: &str) -> Option<&CrmObject> {
        id.parse::<u64>()
            .ok()
            .and_then(|n| self.objects.get(&n))
            .filter(|o| o.kind == kind)
    }

    pub fn get_mut(&mut self, kind: ObjectType, id: &str) -> Option<&mut CrmObject> {
        id.parse::<u64>()
            .ok()
            .and_then(|n| self.objects.get_mut(&n))
            .filter(|o| o.kind == kind)
    }

    pub fn contact_by_email(&self, email: &str) -> Option<&CrmObject> {
        self.objects.values().find(|o| {
            o.kind == ObjectType::Contacts
                && o.get("email")
                    .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }

    pub fn associated(&self, kind: ObjectType, id: &str, to: ObjectType) -> Vec<String> {
        self.associations
            .iter()
            .filter_map(|a| {
                if a.from_type == kind && a.from_id == id && a.to_type == to {
                    Some(a.to_id.clone())
                } else if a.to_type == kind && a.to_id == id && a.from_type == to {
                    Some(a.from_id.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// Whether a property exists on the type (readable).
    pub fn exists(&self, kind: ObjectType, name: &str) -> bool {
        kind.known().contains(&name)
            || kind.read_only().contains(&name)
            || self
                .custom_properties
                .get(&kind)
                .is_some_and(|c| c.contains(name))
    }

    /// Converts and checks written properties; every problem is listed.
    pub fn check(
        &self,
        kind: ObjectType,
        input: &serde_json::Map<String, Value>,
    ) -> Result<BTreeMap<String, String>, Vec<Invalid>> {
        let mut out = BTreeMap::new();
        let mut bad = Vec::new();
        for (name, value) in input {
            let v = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => {
                    bad.push(Invalid {
                        name: name.clone(),
                        error: "INVALID_PROPERTY_VALUE",
                        message: format!("Property \"{name}\" must be a string, number or boolean"),
                    });
                    continue;
                }
            };
            if !self.exists(kind, name) {
                bad.push(Invalid {
                    name: name.clone(),
                    error: "PROPERTY_DOESNT_EXIST",
                    message: format!("Property \"{name}\" does not exist"),
                });
                continue;
            }
            if kind.read_only().contains(&name.as_str()) {
                bad.push(Invalid {
                    name: name.clone(),
                    error: "READ_ONLY_VALUE",
                    message: format!(
                        "\"{name}\" is a read only property; its value cannot be set."
                    ),
                });
                continue;
            }
            let options: Option<&[&str]> = match (kind, name.as_str()) {
                (ObjectType::Contacts | ObjectType::Companies, "lifecyclestage") => Some(LIFECYCLE),
                (ObjectType::Contacts, "hs_lead_status") => Some(LEAD_STATUS),
                (ObjectType::Deals, "pipeline") => Some(PIPELINES),
                (ObjectType::Deals, "dealstage") => Some(DEAL_STAGES),
                _ => None,
            };
            if let Some(options) = options {
                if !v.is_empty() && !options.contains(&v.as_str()) {
                    bad.push(Invalid {
                        name: name.clone(),
                        error: "INVALID_OPTION",
                        message: format!(
                            "{v} was not one of the allowed options: [{}]",
                            options.join(", ")
                        ),
                    });
                    continue;
                }
            }
            if name == "email" && !v.is_empty() && !is_email(&v) {
                bad.push(Invalid {
                    name: name.clone(),
                    error: "INVALID_EMAIL",
                    message: format!("Email address {v} is invalid"),
                });
                continue;
            }
            if matches!(
                name.as_str(),
                "amount" | "annualrevenue" | "numberofemployees"
            ) && !v.is_empty()
                && v.parse::<f64>().is_err()
            {
                bad.push(Invalid {
                    name: name.clone(),
                    error: "INVALID_FLOAT",
                    message: format!("{v} was not a valid number."),
                });
                continue;
            }
            if name == "closedate" && !v.is_empty() && !is_date(&v) {
                bad.push(Invalid {
                    name: name.clone(),
                    error: "INVALID_DATE",
                    message: format!("{v} was not a valid date (ISO 8601 or epoch milliseconds)."),
                });
                continue;
            }
            out.insert(name.clone(), v);
        }
        if bad.is_empty() {
            Ok(out)
        } else {
            Err(bad)
        }
    }
}

/// HubSpot's message for invalid properties: `Property values were not valid: [JSON]`.
pub(crate) fn invalid_message(bad: &[Invalid]) -> String {
    let list: Vec<Value> = bad
        .iter()
        .map(|b| {
            json!({"isValid": false, "message": b.message, "error": b.error, "name": b.name,
                   "localizedErrorMessage": b.message})
        })
        .collect();
    format!("Property values were not valid: {}", Value::Array(list))
}
