//! HubSpot: find-or-create a contact, record a deal, associate; refusals.

use reqwest::Method;
use serde_json::json;
use switchyard_standins::hubspot::ObjectType;
use switchyard_standins::StandIns;

use crate::support::{last_reason, req, send};

fn call(s: &StandIns, method: Method, path: &str) -> reqwest::RequestBuilder {
    req(method, s.hubspot().url(), path).bearer_auth(s.hubspot().token())
}

/// The body the `hubspot.find_contact_by_email` action sends.
fn search_by_email(email: &str) -> serde_json::Value {
    json!({
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
        "properties": ["email", "firstname", "lastname", "company"],
        "limit": 1
    })
}

#[tokio::test]
async fn find_or_create_contact_then_deal_and_association() {
    let s = StandIns::start().await;
    let (status, _, body) = send(
        call(&s, Method::POST, "/crm/v3/objects/contacts/search")
            .json(&search_by_email("ada@example.com")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 0);
    assert_eq!(body["results"], json!([]));

    let (status, _, body) = send(
        call(&s, Method::POST, "/crm/v3/objects/contacts").json(&json!({
            "properties": {"email": "Ada@Example.com", "firstname": "Ada", "company": "Analytical"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let contact = body["id"].as_str().expect("id").to_string();
    assert_eq!(body["properties"]["email"], "ada@example.com");
    assert_eq!(body["archived"], false);

    // Search is case-insensitive on the email and returns the asked properties.
    let (_, _, body) = send(
        call(&s, Method::POST, "/crm/v3/objects/contacts/search")
            .json(&search_by_email("ADA@example.com")),
    )
    .await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["results"][0]["id"], contact.as_str());
    assert_eq!(body["results"][0]["properties"]["firstname"], "Ada");
    assert_eq!(
        body["results"][0]["properties"]["lastname"],
        serde_json::Value::Null
    );

    // A second create with the same email: 409 naming the existing id.
    let (status, _, body) = send(
        call(&s, Method::POST, "/crm/v3/objects/contacts").json(&json!({
            "properties": {"email": "ada@example.com"}
        })),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        body["message"],
        format!("Contact already exists. Existing ID: {contact}")
    );
    assert_eq!(body["status"], "error");
    assert!(body["correlationId"].is_string());

    let (status, _, body) = send(
        call(&s, Method::POST, "/crm/v3/objects/deals").json(&json!({
            "properties": {"dealname": "Trial — analytical.example", "pipeline": "default",
                           "dealstage": "appointmentscheduled", "closedate": "2030-01-31"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let deal = body["id"].as_str().expect("id").to_string();

    let (status, _, body) = send(call(
        &s,
        Method::PUT,
        &format!("/crm/v4/objects/deals/{deal}/associations/default/contacts/{contact}"),
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(
        body["results"][0]["associationSpec"]["associationTypeId"],
        3
    );
    assert_eq!(
        s.hubspot()
            .associated(ObjectType::Contacts, &contact, ObjectType::Deals),
        vec![deal.clone()]
    );
    let (_, _, body) = send(call(
        &s,
        Method::GET,
        &format!("/crm/v3/objects/contacts/{contact}?associations=deals"),
    ))
    .await;
    assert_eq!(
        body["associations"]["deals"]["results"][0]["id"],
        deal.as_str()
    );

    // Associating with a record that does not exist is refused.
    let (status, _, _) = send(call(
        &s,
        Method::PUT,
        &format!("/crm/v4/objects/deals/{deal}/associations/default/contacts/999"),
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(s.hubspot().contacts().len(), 1);
    assert_eq!(
        s.hubspot().deals()[0].get("dealstage"),
        Some("appointmentscheduled")
    );
}

#[tokio::test]
async fn refuses_invalid_properties_bodies_and_auth() {
    let s = StandIns::start().await;
    let (status, _, body) = send(
        req(Method::POST, s.hubspot().url(), "/crm/v3/objects/contacts")
            .json(&json!({"properties": {}})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    assert!(body["message"]
        .as_str()
        .expect("message")
        .starts_with("Authentication credentials not found"));

    let cases = [
        (
            json!({"properties": {"emial": "x@example.com"}}),
            "PROPERTY_DOESNT_EXIST",
        ),
        (
            json!({"properties": {"email": "not-an-email"}}),
            "INVALID_EMAIL",
        ),
        (
            json!({"properties": {"lifecyclestage": "prospect"}}),
            "INVALID_OPTION",
        ),
        (
            json!({"email": "x@example.com"}),
            "required attributes are not set [properties]",
        ),
    ];
    for (b, reason) in cases {
        let (status, _, answer) =
            send(call(&s, Method::POST, "/crm/v3/objects/contacts").json(&b)).await;
        assert_eq!(status, 400, "{b}");
        assert_eq!(answer["category"], "VALIDATION_ERROR");
        assert!(last_reason(&s).contains(reason), "{b}: {}", last_reason(&s));
    }
    // A custom property is accepted once declared.
    s.hubspot().add_property(ObjectType::Contacts, "trial_url");
    let (status, _, _) = send(
        call(&s, Method::POST, "/crm/v3/objects/contacts").json(&json!({
            "properties": {"email": "b@example.com", "trial_url": "https://b.example.com"}
        })),
    )
    .await;
    assert_eq!(status, 201);

    let (status, _, _) = send(call(&s, Method::POST, "/crm/v3/objects/contacts/search").json(&json!({
        "filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQUALS", "value": "b@example.com"}]}]
    })))
    .await;
    assert_eq!(status, 400);
    assert!(last_reason(&s).contains("`EQUALS` is not one of"));
    let (status, _, _) = send(
        call(&s, Method::POST, "/crm/v3/objects/deals").json(&json!({
            "properties": {"dealname": "x", "dealstage": "won"}
        })),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) =
        send(call(&s, Method::POST, "/crm/v3/objects/widgets").json(&json!({"properties": {}})))
            .await;
    assert_eq!(status, 400);
    assert!(last_reason(&s).contains("Unable to infer object type from: widgets"));
    let (status, _, _) = send(call(&s, Method::GET, "/crm/v3/contacts")).await;
    assert_eq!(status, 404);
}
