//! DigitalOcean: the Droplet pool flow, tags, actions, domain records, pagination, refusals.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_standins::{StandIns, Vendor};

use crate::support::{last_reason, req, send};

fn call(s: &StandIns, method: Method, path: &str) -> reqwest::RequestBuilder {
    req(method, s.digitalocean().url(), path).bearer_auth(s.digitalocean().token())
}

#[tokio::test]
async fn droplet_pool_flow_create_list_by_tag_retag_power_off_delete() {
    let s = StandIns::start().await;
    let (status, _, body) = send(call(&s, Method::POST, "/v2/droplets").json(&json!({
        "name": "trial-spare-1", "region": "nyc3", "size": "s-1vcpu-1gb",
        "image": "ubuntu-24-04-x64", "tags": ["trial-pending"], "user_data": "#cloud-config\n"
    })))
    .await;
    assert_eq!(status, 202, "{body}");
    // As the API answers a create: status new, no addresses yet, a create action link.
    assert_eq!(body["droplet"]["status"], "new");
    assert_eq!(body["droplet"]["networks"]["v4"], json!([]));
    assert_eq!(body["links"]["actions"][0]["rel"], "create");
    let id = body["droplet"]["id"].as_u64().expect("id");

    // With the default zero boot delay, the next read sees it active with a public IPv4.
    let (status, _, body) =
        send(call(&s, Method::GET, "/v2/droplets?tag_name=trial-pending")).await;
    assert_eq!(status, 200);
    assert_eq!(body["meta"]["total"], 1);
    let d = &body["droplets"][0];
    assert_eq!(d["id"].as_u64(), Some(id));
    assert_eq!(d["status"], "active");
    let public = d["networks"]["v4"]
        .as_array()
        .expect("v4")
        .iter()
        .find(|n| n["type"] == "public")
        .expect("a public address");
    assert!(public["ip_address"]
        .as_str()
        .expect("ip")
        .starts_with("203.0."));
    assert_eq!(body["links"], json!({}));

    // Tagging needs the tag to exist.
    let tag_body =
        json!({"resources": [{"resource_id": id.to_string(), "resource_type": "droplet"}]});
    let (status, _, _) =
        send(call(&s, Method::POST, "/v2/tags/trial/resources").json(&tag_body)).await;
    assert_eq!(status, 404);
    assert!(
        last_reason(&s).contains("no tag `trial`"),
        "{}",
        last_reason(&s)
    );
    let (status, _, body) =
        send(call(&s, Method::POST, "/v2/tags").json(&json!({"name": "trial"}))).await;
    assert_eq!((status, &body["tag"]["name"]), (201, &json!("trial")));
    let (status, _, body) =
        send(call(&s, Method::POST, "/v2/tags/trial/resources").json(&tag_body)).await;
    assert_eq!(status, 204, "{body}");
    let (status, _, _) =
        send(call(&s, Method::DELETE, "/v2/tags/trial-pending/resources").json(&tag_body)).await;
    assert_eq!(status, 204);
    assert!(s.digitalocean().droplets_tagged("trial-pending").is_empty());
    assert_eq!(s.digitalocean().droplets_tagged("trial")[0].id, id);
    let (_, _, body) = send(call(&s, Method::GET, "/v2/droplets?tag_name=trial-pending")).await;
    assert_eq!(body["droplets"], json!([]));

    // Power off: 201 with an in-progress action; the Droplet is off.
    let (status, _, body) = send(
        call(&s, Method::POST, &format!("/v2/droplets/{id}/actions"))
            .json(&json!({"type": "power_off"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["action"]["type"], "power_off");
    assert_eq!(body["action"]["status"], "in-progress");
    assert_eq!(body["action"]["resource_id"].as_u64(), Some(id));
    assert_eq!(s.digitalocean().droplet(id).expect("droplet").status, "off");
    assert_eq!(
        s.digitalocean()
            .actions()
            .last()
            .map(|a| a.kind.clone())
            .as_deref(),
        Some("power_off")
    );

    let (status, _, body) = send(call(&s, Method::DELETE, &format!("/v2/droplets/{id}"))).await;
    assert_eq!((status, body), (204, json!("")));
    let (status, _, body) = send(call(&s, Method::GET, &format!("/v2/droplets/{id}"))).await;
    assert_eq!(status, 404);
    assert_eq!(body["id"], "not_found");
    assert!(s.digitalocean().droplets().is_empty());

    // Every request is in the log, with the body as sent.
    let create = &s.requests_to(Vendor::DigitalOcean)[0];
    assert_eq!(
        (create.method.as_str(), create.path.as_str()),
        ("POST", "/v2/droplets")
    );
    assert_eq!(create.body["tags"], json!(["trial-pending"]));
    assert!(create
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer ")));
}

#[tokio::test]
async fn lists_page_with_links_pages_next() {
    let s = StandIns::start().await;
    for i in 0..5 {
        s.digitalocean()
            .add_droplet(&format!("pool-{i}"), &["trial-pending"]);
    }
    s.digitalocean().add_droplet("other", &["web"]);
    let mut url = format!(
        "{}/v2/droplets?tag_name=trial-pending&per_page=2",
        s.digitalocean().url()
    );
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let (status, _, body) = send(
            crate::support::client()
                .get(&url)
                .bearer_auth(s.digitalocean().token()),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["meta"]["total"], 5);
        pages += 1;
        for d in body["droplets"].as_array().expect("droplets") {
            names.push(d["name"].as_str().expect("name").to_string());
        }
        match body["links"]["pages"]["next"].as_str() {
            Some(next) => {
                assert!(next.contains("tag_name=trial-pending"), "{next}");
                url = next.to_string();
            }
            None => {
                assert!(body["links"]["pages"]["prev"].is_string());
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["pool-0", "pool-1", "pool-2", "pool-3", "pool-4"]);
}

#[tokio::test]
async fn refuses_bad_auth_unknown_paths_and_wrong_methods() {
    let s = StandIns::start().await;
    let base = s.digitalocean().url();
    let (status, _, body) = send(req(Method::GET, base, "/v2/droplets")).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"id": "unauthorized", "message": "Unable to authenticate you"})
    );
    assert_eq!(last_reason(&s), "no Authorization header");
    let (status, _, _) =
        send(req(Method::GET, base, "/v2/droplets").bearer_auth("dop_v1_wrong")).await;
    assert_eq!(status, 401);
    assert!(last_reason(&s).contains("not the expected token"));
    let (status, _, _) =
        send(req(Method::GET, base, "/v2/droplets").basic_auth("u", Some("p"))).await;
    assert_eq!(status, 401);
    assert!(last_reason(&s).contains("is not `Bearer TOKEN`"));

    let (status, _, body) = send(call(&s, Method::GET, "/v2/droplet")).await;
    assert_eq!((status, &body["id"]), (404, &json!("not_found")));
    assert!(last_reason(&s).contains("no DigitalOcean API route GET /v2/droplet"));
    let (status, _, _) = send(call(&s, Method::PUT, "/v2/droplets")).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn create_refuses_missing_and_invalid_fields_with_422() {
    let s = StandIns::start().await;
    let cases = [
        (
            json!({"name": "a", "region": "nyc3", "image": "ubuntu-24-04-x64"}),
            "invalid size",
        ),
        (json!({"name": "a", "size": "s-1vcpu-1gb"}), "invalid image"),
        (
            json!({"size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
            "Name is required",
        ),
        (
            json!({"name": "a_b", "size": "s-1vcpu-1gb", "image": "ubuntu-24-04-x64"}),
            "Name `a_b` is invalid",
        ),
        (
            json!({"name": "a", "size": "s-1vcpu-1gb", "image": 7, "region": "mars1"}),
            "invalid region",
        ),
        (
            json!({"name": "a", "size": "s-1vcpu-1gb", "image": 7, "tags": ["bad tag"]}),
            "tag name `bad tag`",
        ),
    ];
    for (body, reason) in cases {
        let (status, _, answer) = send(call(&s, Method::POST, "/v2/droplets").json(&body)).await;
        assert_eq!(status, 422, "{body} -> {answer}");
        assert_eq!(answer["id"], "unprocessable_entity");
        assert!(
            last_reason(&s).contains(reason),
            "{body}: {}",
            last_reason(&s)
        );
    }
    let (status, _, body) = send(call(&s, Method::POST, "/v2/droplets").body("{not json")).await;
    assert_eq!((status, &body["id"]), (400, &json!("bad_request")));
    let (status, _, _) =
        send(call(&s, Method::POST, "/v2/droplets/1/actions").json(&json!({}))).await;
    assert_eq!(status, 422);
    assert!(s.digitalocean().droplets().is_empty());
}

#[tokio::test]
async fn a_booting_droplet_refuses_actions_until_it_is_active() {
    let s = StandIns::start().await;
    s.digitalocean().set_boot_delay(Duration::from_secs(3600));
    let (_, _, body) = send(call(&s, Method::POST, "/v2/droplets").json(&json!({
        "name": "slow", "size": "s-1vcpu-1gb", "image": 123456, "tags": ["trial-pending"]
    })))
    .await;
    let id = body["droplet"]["id"].as_u64().expect("id");
    let (_, _, body) = send(call(&s, Method::GET, &format!("/v2/droplets/{id}"))).await;
    assert_eq!(body["droplet"]["status"], "new");
    assert_eq!(body["droplet"]["image"]["id"], 123456);
    let action = json!({"type": "power_off"});
    let (status, _, body) =
        send(call(&s, Method::POST, &format!("/v2/droplets/{id}/actions")).json(&action)).await;
    assert_eq!(status, 422);
    assert_eq!(body["message"], "Droplet already has a pending event.");
    s.digitalocean().boot(id);
    let (status, _, _) =
        send(call(&s, Method::POST, &format!("/v2/droplets/{id}/actions")).json(&action)).await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn domain_records_create_filter_by_fqdn_and_delete() {
    let s = StandIns::start().await;
    s.digitalocean().add_domain("example.com");
    // A new domain has its SOA and NS records.
    let kinds: Vec<String> = s
        .digitalocean()
        .records("example.com")
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, ["SOA", "NS", "NS", "NS"]);

    let (status, _, body) = send(
        call(&s, Method::POST, "/v2/domains/example.com/records").json(&json!({
            "type": "A", "name": "trial-42", "data": "203.0.113.7", "ttl": 1800
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["domain_record"]["id"].as_u64().expect("id");
    assert_eq!(body["domain_record"]["name"], "trial-42");

    // `name` filters by the fully qualified name, as the API does.
    let (_, _, body) = send(call(
        &s,
        Method::GET,
        "/v2/domains/example.com/records?name=trial-42.example.com&type=A",
    ))
    .await;
    assert_eq!(body["meta"]["total"], 1);
    assert_eq!(body["domain_records"][0]["data"], "203.0.113.7");
    let (_, _, body) = send(call(
        &s,
        Method::GET,
        "/v2/domains/example.com/records?name=trial-42",
    ))
    .await;
    assert_eq!(body["meta"]["total"], 0);

    let bad: [(Value, &str); 4] = [
        (
            json!({"type": "A", "name": "x", "data": "not-an-ip"}),
            "not a valid IPv4",
        ),
        (json!({"type": "A", "name": "x"}), "`data` is required"),
        (
            json!({"type": "MX", "data": "mail.example.com."}),
            "`priority` is required",
        ),
        (
            json!({"type": "CNAME", "name": "trial-42", "data": "x.example.com."}),
            "CNAME records cannot share",
        ),
    ];
    for (b, reason) in bad {
        let (status, _, _) =
            send(call(&s, Method::POST, "/v2/domains/example.com/records").json(&b)).await;
        assert_eq!(status, 422, "{b}");
        assert!(last_reason(&s).contains(reason), "{b}: {}", last_reason(&s));
    }
    let (status, _, _) = send(call(&s, Method::POST, "/v2/domains/nope.com/records").json(
        &json!({
            "type": "A", "name": "x", "data": "203.0.113.7"
        }),
    ))
    .await;
    assert_eq!(status, 404);

    let (status, _, _) = send(call(
        &s,
        Method::DELETE,
        &format!("/v2/domains/example.com/records/{id}"),
    ))
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = send(call(
        &s,
        Method::DELETE,
        &format!("/v2/domains/example.com/records/{id}"),
    ))
    .await;
    assert_eq!(status, 404);
    assert_eq!(s.digitalocean().records("example.com").len(), 4);
}
