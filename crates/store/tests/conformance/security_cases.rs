//! Credentials (ciphertexts only), API tokens (hashes only) and the audit log.

use std::sync::Arc;

use switchyard_store::{ApiToken, AuditEntry, Store, StoredCredential};
use switchyard_types::from_micros;

type S = Arc<dyn Store>;

fn credential(name: &str, key_id: &str, created: i64) -> StoredCredential {
    StoredCredential {
        name: name.into(),
        key_id: key_id.into(),
        nonce: vec![1; 24],
        // Every byte value, zeros included, must come back as it went in.
        ciphertext: (0..=255u8).collect(),
        allowed_hosts: vec!["api.github.com".into(), "uploads.github.com".into()],
        created_at: from_micros(created),
        updated_at: from_micros(created),
    }
}

fn token(id: &str, name: &str, role: &str, hash: u8, created: i64) -> ApiToken {
    ApiToken {
        id: id.into(),
        name: name.into(),
        role: role.into(),
        hash: vec![hash; 32],
        created_at: from_micros(created),
        revoked_at: None,
    }
}

pub async fn credentials_upsert_keep_creation_time_and_delete(store: S) {
    assert!(store.credentials().await.unwrap().is_empty());
    store
        .put_credentials(vec![credential("b", "k1", 10), credential("a", "k1", 10)])
        .await
        .unwrap();
    let mut again = credential("a", "k2", 99);
    again.allowed_hosts.clear();
    again.nonce = vec![7; 24];
    store.put_credentials(vec![again]).await.unwrap();

    let all = store.credentials().await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"],
        "by name"
    );
    assert_eq!(all[0].key_id, "k2");
    assert_eq!(all[0].nonce, vec![7; 24]);
    assert_eq!(
        all[0].created_at.timestamp_micros(),
        10,
        "creation time kept"
    );
    assert_eq!(all[0].updated_at.timestamp_micros(), 99);
    assert!(all[0].allowed_hosts.is_empty());
    assert_eq!(
        all[1].allowed_hosts,
        ["api.github.com", "uploads.github.com"]
    );
    assert_eq!(all[1].ciphertext, (0..=255u8).collect::<Vec<_>>());

    assert!(store.delete_credential("a").await.unwrap());
    assert!(!store.delete_credential("a").await.unwrap());
    assert_eq!(store.credentials().await.unwrap().len(), 1);
}

/// A key rotation writes every credential in one call: all of them change together.
pub async fn credentials_rotation_rewrites_all_at_once(store: S) {
    let names = ["github", "hubspot", "sendgrid", "smtp"];
    store
        .put_credentials(names.iter().map(|n| credential(n, "old", 1)).collect())
        .await
        .unwrap();
    let rotated: Vec<_> = names
        .iter()
        .map(|n| {
            let mut c = credential(n, "new", 1);
            c.updated_at = from_micros(2);
            c
        })
        .collect();
    store.put_credentials(rotated).await.unwrap();
    let all = store.credentials().await.unwrap();
    assert_eq!(all.len(), names.len());
    assert!(all.iter().all(|c| c.key_id == "new"), "{all:?}");
    assert!(all.iter().all(|c| c.updated_at.timestamp_micros() == 2));
}

pub async fn tokens_are_found_by_hash_and_revoked_by_id_or_name(store: S) {
    for (i, (id, name, hash)) in [("t1", "ci", 1u8), ("t2", "ops", 2), ("t3", "ops", 3)]
        .into_iter()
        .enumerate()
    {
        store
            .create_token(token(id, name, "viewer", hash, 100 + i as i64))
            .await
            .unwrap();
    }
    let t = store.token_by_hash(&[2; 32]).await.unwrap().unwrap();
    assert_eq!((t.id.as_str(), t.name.as_str()), ("t2", "ops"));
    assert_eq!(t.role, "viewer");
    assert_eq!(t.created_at.timestamp_micros(), 101);
    assert!(t.revoked_at.is_none());
    assert!(store.token_by_hash(&[9; 32]).await.unwrap().is_none());

    assert_eq!(store.revoke_token("t1").await.unwrap(), 1);
    assert_eq!(store.revoke_token("ops").await.unwrap(), 2);
    assert_eq!(
        store.revoke_token("ops").await.unwrap(),
        0,
        "already revoked"
    );
    assert_eq!(store.revoke_token("nobody").await.unwrap(), 0);
    let all = store.tokens().await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
        ["t1", "t2", "t3"],
        "oldest first"
    );
    assert!(all.iter().all(|t| t.revoked_at.is_some()));
    let revoked = store.token_by_hash(&[1; 32]).await.unwrap().unwrap();
    assert!(revoked.revoked_at.is_some(), "found, and seen as revoked");
}

/// Two tokens cannot share a hash; the refused one does not spoil writes beside it.
pub async fn duplicate_token_hash_is_refused_alone(store: S) {
    store
        .create_token(token("t1", "ci", "admin", 5, 1))
        .await
        .unwrap();
    let (dup, other) = tokio::join!(
        store.create_token(token("t2", "copy", "admin", 5, 2)),
        store.create_token(token("t3", "ops", "operator", 6, 3)),
    );
    assert!(dup.is_err(), "a second token with the same hash");
    other.unwrap();
    let ids: Vec<_> = store
        .tokens()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, ["t1", "t3"]);
}

pub async fn audit_pages_newest_first(store: S) {
    for i in 0..5 {
        store
            .record_audit(AuditEntry {
                seq: 0,
                at: from_micros(1_000 + i),
                token_id: (i % 2 == 0).then(|| format!("t{i}")),
                token_name: Some("ci".into()),
                role: Some("admin".into()),
                action: "resource.set".into(),
                target: format!("r{i}"),
                outcome: if i == 3 { "denied" } else { "ok" }.into(),
            })
            .await
            .unwrap();
    }
    let page = store.audit(None, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        ["r4", "r3"]
    );
    assert!(page[0].seq > page[1].seq);
    assert_eq!(page[1].outcome, "denied");
    assert_eq!(page[1].token_id, None);
    assert_eq!(page[0].token_id.as_deref(), Some("t4"));
    assert_eq!(page[0].at.timestamp_micros(), 1_004);
    assert_eq!(page[0].role.as_deref(), Some("admin"));
    let next = store.audit(Some(page[1].seq), 10).await.unwrap();
    assert_eq!(
        next.iter().map(|e| e.target.as_str()).collect::<Vec<_>>(),
        ["r2", "r1", "r0"]
    );
    assert!(store.audit(Some(next[2].seq), 10).await.unwrap().is_empty());
}
