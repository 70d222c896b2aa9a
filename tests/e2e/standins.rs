//! The vendor stand-ins (tests/standins) accept what Switchyard's `http_request` sends when
//! it makes the shipped packs' requests: a story chains the packs' requests (same method,
//! path, headers, auth and body as `packs/*/actions/*.yaml`) through the real binary, and
//! every stand-in's state ends as the vendor's would, with no request refused.

use std::time::Duration;

use serde_json::json;
use switchyard_standins::{StandIns, Vendor};

use crate::support::{stories_dir, Server};

/// The packs' requests, in the order the trial-provisioning flow makes them.
const STORY: &str = r#"
name: packs-requests
description: The shipped packs' requests against the stand-ins
agents:
  - name: inbound
    type: webhook
    auth: none
  - name: pool
    type: http_request
    from: inbound
    method: GET
    url: "{{ resource.digitalocean_api_url }}/v2/droplets"
    query: {tag_name: trial-pending, per_page: "1", page: "1"}
    headers: {Accept: application/json}
    auth: {bearer: "{{ credential.digitalocean_token }}"}
    paginate: {next: $.links.pages.next, items: $.droplets}
  - name: tag
    type: http_request
    from: pool
    method: POST
    url: "{{ resource.digitalocean_api_url }}/v2/tags"
    headers: {Accept: application/json}
    auth: {bearer: "{{ credential.digitalocean_token }}"}
    body: {name: trial}
  - name: retag
    type: http_request
    from: tag
    method: POST
    url: "{{ resource.digitalocean_api_url }}/v2/tags/trial/resources"
    auth: {bearer: "{{ credential.digitalocean_token }}"}
    body:
      resources:
        - resource_id: "{{ pool.items[0].id | string }}"
          resource_type: droplet
  - name: untag
    type: http_request
    from: retag
    method: DELETE
    url: "{{ resource.digitalocean_api_url }}/v2/tags/trial-pending/resources"
    auth: {bearer: "{{ credential.digitalocean_token }}"}
    body:
      resources:
        - resource_id: "{{ pool.items[0].id | string }}"
          resource_type: droplet
  - name: dns
    type: http_request
    from: untag
    method: POST
    url: "{{ resource.digitalocean_api_url }}/v2/domains/example.com/records"
    headers: {Accept: application/json}
    auth: {bearer: "{{ credential.digitalocean_token }}"}
    body:
      type: A
      name: "{{ inbound.body.tenant }}"
      data: "{{ (pool.items[0].networks.v4 | selectattr('type', 'equalto', 'public') | first).ip_address }}"
      ttl: 1800
  - name: find_contact
    type: http_request
    from: dns
    method: POST
    url: "{{ resource.hubspot_api_url }}/crm/v3/objects/contacts/search"
    auth: {bearer: "{{ credential.hubspot_token }}"}
    body:
      filterGroups:
        - filters:
            - propertyName: email
              operator: EQ
              value: "{{ inbound.body.email }}"
      properties: [email, firstname, lastname, company]
      limit: 1
  - name: create_contact
    type: http_request
    from: find_contact
    if: "find_contact.body.total == 0"
    method: POST
    url: "{{ resource.hubspot_api_url }}/crm/v3/objects/contacts"
    auth: {bearer: "{{ credential.hubspot_token }}"}
    body:
      properties: {email: "{{ inbound.body.email }}", firstname: "{{ inbound.body.name }}"}
  - name: welcome
    type: http_request
    from: create_contact
    method: POST
    url: "{{ resource.sendgrid_api_url }}/v3/mail/send"
    auth: {bearer: "{{ credential.sendgrid_api_key }}"}
    body:
      personalizations:
        - to: [{email: "{{ inbound.body.email }}"}]
          dynamic_template_data: {url: "https://{{ inbound.body.tenant }}.example.com"}
      from: {email: hello@example.com}
      template_id: d-0123456789abcdef0123456789abcdef
  - name: deployment
    type: http_request
    from: welcome
    method: POST
    url: "{{ resource.github_api_url }}/repos/acme/shop/deployments"
    headers: {Accept: application/vnd.github+json, X-GitHub-Api-Version: "2022-11-28"}
    auth: {bearer: "{{ credential.github_token }}"}
    body: {ref: main, environment: qa, task: deploy, required_contexts: []}
  - name: deployed
    type: http_request
    from: deployment
    method: POST
    url: "{{ resource.github_api_url }}/repos/acme/shop/deployments/{{ deployment.body.id }}/statuses"
    headers: {Accept: application/vnd.github+json, X-GitHub-Api-Version: "2022-11-28"}
    auth: {bearer: "{{ credential.github_token }}"}
    body: {state: success, environment_url: "https://{{ inbound.body.tenant }}.example.com"}
  - name: announce
    type: http_request
    from: deployed
    method: POST
    url: "{{ credential.chat_webhook_url }}"
    body: {text: "Trial {{ inbound.body.tenant }} is ready"}
  - name: power_off
    type: http_request
    from: announce
    method: POST
    url: "{{ resource.digitalocean_api_url }}/v2/droplets/{{ pool.items[1].id }}/actions"
    headers: {Accept: application/json}
    auth: {bearer: "{{ credential.digitalocean_token }}"}
    body: {type: power_off}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packs_requests_through_the_binary_are_accepted_by_the_stand_ins() {
    let s = StandIns::start().await;
    s.digitalocean().add_domain("example.com");
    let first = s.digitalocean().add_droplet("pool-1", &["trial-pending"]);
    let second = s.digitalocean().add_droplet("pool-2", &["trial-pending"]);
    s.github().add_repo("acme/shop", "main");

    let stories = stories_dir(&[("packs-requests.yaml", STORY)]);
    let data = tempfile::tempdir().unwrap();
    // Credentials stored encrypted through the CLI, resources by the CLI.
    let server = Server::start(stories.path(), &data.path().join("d")).await;
    for (name, value) in s.credentials() {
        server.set_credential(&name, &value, &[]);
    }
    for (name, value) in s.resources() {
        let out = server.cli(&["resource", "set", &name, &value]);
        assert!(out.status.success(), "{out:?}");
    }

    let (status, ids) = server
        .post(
            "packs-requests",
            "inbound",
            &json!({"email": "ada@example.com", "name": "Ada", "tenant": "trial-ada"}),
        )
        .await;
    assert_eq!(status, 202, "{ids}");
    let detail = server
        .wait_run(ids["run_id"].as_str().unwrap(), Duration::from_secs(30))
        .await;
    let summary: Vec<String> = s.requests().iter().map(|r| r.summary()).collect();
    assert_eq!(
        detail["run"]["status"],
        "succeeded",
        "{detail}\nstand-in requests:\n{}",
        summary.join("\n")
    );
    assert!(s.rejected().is_empty(), "refused:\n{}", summary.join("\n"));

    // Pagination followed DigitalOcean's links.pages.next: two pages of one Droplet.
    let pages: Vec<String> = s
        .requests_to(Vendor::DigitalOcean)
        .into_iter()
        .filter(|r| r.method == "GET")
        .map(|r| r.query)
        .collect();
    assert_eq!(pages.len(), 2, "{summary:?}");
    assert!(pages[1].contains("page=2"), "{pages:?}");
    let d = s.digitalocean();
    assert!(d.droplet(first.id).unwrap().has_tag("trial"));
    assert!(!d.droplet(first.id).unwrap().has_tag("trial-pending"));
    assert_eq!(d.droplet(second.id).unwrap().status, "off");
    let record = d
        .records("example.com")
        .into_iter()
        .find(|r| r.name == "trial-ada")
        .expect("the A record");
    assert_eq!(
        (record.kind.as_str(), record.data),
        ("A", first.public_ipv4.clone())
    );
    assert_eq!(
        s.hubspot()
            .contact_by_email("ada@example.com")
            .unwrap()
            .get("firstname"),
        Some("Ada")
    );
    let mails = s.sendgrid().mails();
    assert_eq!(mails[0].to(), ["ada@example.com"]);
    assert_eq!(mails[0].data()["url"], "https://trial-ada.example.com");
    let deployments = s.github().deployments("acme/shop");
    assert_eq!(deployments[0].state(), Some("success"));
    assert_eq!(
        deployments[0].statuses[0].environment_url,
        "https://trial-ada.example.com"
    );
    assert_eq!(s.chat().messages()[0].text, "Trial trial-ada is ready");
    // What http_request sent, as the vendors require it.
    let github = s.requests_to(Vendor::GitHub);
    assert!(github.iter().all(|r| r
        .header("user-agent")
        .is_some_and(|u| u.starts_with("switchyard/"))));
    let untag = s
        .requests_to(Vendor::DigitalOcean)
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("untag");
    assert_eq!(
        untag.body,
        json!({"resources": [{"resource_id": first.id.to_string(), "resource_type": "droplet"}]})
    );
    assert_eq!(untag.header("content-type"), Some("application/json"));
}
