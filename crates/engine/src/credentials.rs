//! Credentials: encrypted in the store, decrypted into memory (held as `secrecy` secrets)
//! for templates (`credential.NAME`), refreshed whenever they change through the engine.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use switchyard_agents::CredentialHosts;
use switchyard_store::{Store, StoredCredential};
use switchyard_template::Lookup;
use switchyard_types::Timestamp;

use crate::master_key::{pending_path, write_key_file, KeySource, Keyring, MasterKey};
use crate::Engine;

/// Largest credential value, in bytes.
pub const MAX_CREDENTIAL_BYTES: usize = 64 * 1024;

/// What went wrong with credentials or the master key.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// A bad name, value or host.
    #[error("{0}")]
    Invalid(String),
    /// No credential with that name.
    #[error("no credential named `{0}`")]
    NotFound(String),
    /// The server has no master key (credentials are off).
    #[error("this server has no master key, so it cannot store credentials")]
    NoKey,
    /// The master key could not be parsed.
    #[error("invalid master key in {0}")]
    InvalidKey(String),
    /// Credentials exist but no key was given.
    #[error(
        "{count} credential(s) are stored but no master key was given: set SWITCHYARD_MASTER_KEY \
         or put the key (32 bytes, base64) in {file} (--master-key-file)",
        file = file.display()
    )]
    MissingKey {
        /// Credentials stored.
        count: usize,
        /// The key file looked for.
        file: PathBuf,
    },
    /// The key is not the one that encrypted a credential.
    #[error(
        "the master key (id {given}) is not the key that encrypted credential `{name}` (id {stored}): \
         give the right key in SWITCHYARD_MASTER_KEY or the key file"
    )]
    WrongKey {
        /// Credential.
        name: String,
        /// Key id stored with it.
        stored: String,
        /// Id of the key given.
        given: String,
    },
    /// Decryption failed: tampered data or a forged key id.
    #[error("credential `{name}` does not decrypt with the master key (id {key_id}): the stored data was altered or the key is wrong")]
    Undecryptable {
        /// Credential.
        name: String,
        /// Key id.
        key_id: String,
    },
    /// Rotating a key taken from the environment needs the new key.
    #[error(
        "the master key comes from SWITCHYARD_MASTER_KEY, so the server cannot store a new one: \
         give the new key (`switchyard credential rotate-key --new-key-from-env VAR`), then set \
         SWITCHYARD_MASTER_KEY to it before the next start"
    )]
    RotateNeedsKey,
    /// A key file could not be read or written.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Io(PathBuf, std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] switchyard_store::Error),
}

/// A credential as listed: never its value.
#[derive(Clone, Debug, Serialize)]
pub struct CredentialInfo {
    /// Name.
    pub name: String,
    /// Hosts it may be sent to (empty: any).
    pub allowed_hosts: Vec<String>,
    /// Id of the master key that encrypts it.
    pub key_id: String,
    /// First stored.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// What a key rotation did.
#[derive(Clone, Debug, Serialize)]
pub struct Rotated {
    /// The previous key's id.
    pub old_key_id: String,
    /// The new key's id.
    pub key_id: String,
    /// Credentials re-encrypted.
    pub credentials: usize,
    /// Where the new key was written (`None`: it comes from the environment).
    pub key_file: Option<PathBuf>,
}

struct Entry {
    value: SecretString,
    allowed_hosts: Vec<String>,
}

/// Decrypted credentials in memory. Its `Debug` shows names only.
pub(crate) struct CredentialCache {
    keyring: Option<Arc<Keyring>>,
    values: ArcSwap<HashMap<String, Entry>>,
    writes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self.values.load();
        let mut names: Vec<&String> = values.keys().collect();
        names.sort();
        write!(f, "<credentials {names:?}>")
    }
}

impl CredentialCache {
    pub(crate) fn new(keyring: Option<Arc<Keyring>>) -> Self {
        CredentialCache {
            keyring,
            values: ArcSwap::default(),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Decrypts every stored credential into memory.
    pub(crate) async fn refresh(&self, store: &dyn Store) -> Result<(), CredentialError> {
        let Some(keyring) = &self.keyring else {
            return Ok(());
        };
        let key = keyring.current();
        let mut values = HashMap::new();
        for c in store.credentials().await? {
            let value = key.open(&c)?;
            values.insert(
                c.name,
                Entry {
                    value,
                    allowed_hosts: c.allowed_hosts,
                },
            );
        }
        self.values.store(Arc::new(values));
        Ok(())
    }

    fn key(&self) -> Result<Arc<MasterKey>, CredentialError> {
        self.keyring
            .as_ref()
            .map(|k| k.current())
            .ok_or(CredentialError::NoKey)
    }
}

impl Lookup for CredentialCache {
    fn get(&self, name: &str) -> Option<String> {
        self.values
            .load()
            .get(name)
            .map(|e| e.value.expose_secret().to_string())
    }
}

impl CredentialHosts for CredentialCache {
    fn allowed_hosts(&self, name: &str) -> Option<Vec<String>> {
        self.values
            .load()
            .get(name)
            .map(|e| e.allowed_hosts.clone())
    }
}

fn check_name(name: &str) -> Result<(), CredentialError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && name.len() <= 128 {
        Ok(())
    } else {
        Err(CredentialError::Invalid(format!(
            "`{name}` is not a credential name: use letters, digits and `_`, not starting with a digit"
        )))
    }
}

fn check_host(host: &str) -> Result<String, CredentialError> {
    let h = host.trim().to_ascii_lowercase();
    let name = h.strip_prefix("*.").unwrap_or(&h);
    let ok = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'[' | b']')
        });
    if ok {
        Ok(h)
    } else {
        Err(CredentialError::Invalid(format!(
            "`{host}` is not a host name (write e.g. api.github.com or *.example.com)"
        )))
    }
}

impl Engine {
    /// Stores (or replaces) a credential, encrypted, and makes it visible to templates.
    pub async fn set_credential(
        &self,
        name: &str,
        value: SecretString,
        allowed_hosts: Vec<String>,
    ) -> Result<(), CredentialError> {
        check_name(name)?;
        let len = value.expose_secret().len();
        if len == 0 || len > MAX_CREDENTIAL_BYTES {
            return Err(CredentialError::Invalid(format!(
                "a credential value holds 1 to {MAX_CREDENTIAL_BYTES} bytes (got {len})"
            )));
        }
        let allowed_hosts = allowed_hosts
            .iter()
            .map(|h| check_host(h))
            .collect::<Result<Vec<_>, _>>()?;
        let cache = &self.inner.credentials;
        let _guard = cache.writes.lock().await;
        let key = cache.key()?;
        let (nonce, ciphertext) = key
            .seal(name, value.expose_secret().as_bytes())
            .map_err(CredentialError::Invalid)?;
        let now = switchyard_types::now();
        self.inner
            .store
            .put_credentials(vec![StoredCredential {
                name: name.to_string(),
                key_id: key.id().to_string(),
                nonce,
                ciphertext,
                allowed_hosts,
                created_at: now,
                updated_at: now,
            }])
            .await?;
        cache.refresh(self.inner.store.as_ref()).await
    }

    /// Removes a credential.
    pub async fn delete_credential(&self, name: &str) -> Result<(), CredentialError> {
        let cache = &self.inner.credentials;
        let _guard = cache.writes.lock().await;
        if !self.inner.store.delete_credential(name).await? {
            return Err(CredentialError::NotFound(name.to_string()));
        }
        cache.refresh(self.inner.store.as_ref()).await
    }

    /// Every credential's name, hosts and dates; never a value.
    pub async fn credentials(&self) -> Result<Vec<CredentialInfo>, CredentialError> {
        Ok(self
            .inner
            .store
            .credentials()
            .await?
            .into_iter()
            .map(|c| CredentialInfo {
                name: c.name,
                allowed_hosts: c.allowed_hosts,
                key_id: c.key_id,
                created_at: c.created_at,
                updated_at: c.updated_at,
            })
            .collect())
    }

    /// Re-encrypts every credential under a new master key, atomically. The new key is
    /// `new_key`, or a generated one when the key lives in a file; a key file is replaced
    /// (written as `FILE.new` first, renamed once the store has committed).
    pub async fn rotate_master_key(
        &self,
        new_key: Option<MasterKey>,
    ) -> Result<Rotated, CredentialError> {
        let cache = &self.inner.credentials;
        let _guard = cache.writes.lock().await;
        let keyring = cache.keyring.as_ref().ok_or(CredentialError::NoKey)?;
        let old = keyring.current();
        let new_key = match (new_key, keyring.source()) {
            (Some(k), _) => k,
            (None, KeySource::File(_)) => MasterKey::generate(),
            (None, KeySource::Env) => return Err(CredentialError::RotateNeedsKey),
        };
        if new_key.id() == old.id() {
            return Err(CredentialError::Invalid(
                "the new master key is the key already in use".into(),
            ));
        }
        let now = switchyard_types::now();
        let mut all = Vec::new();
        for c in self.inner.store.credentials().await? {
            let value = old.open(&c)?;
            let (nonce, ciphertext) = new_key
                .seal(&c.name, value.expose_secret().as_bytes())
                .map_err(CredentialError::Invalid)?;
            all.push(StoredCredential {
                key_id: new_key.id().to_string(),
                nonce,
                ciphertext,
                updated_at: now,
                ..c
            });
        }
        let key_file = match keyring.source() {
            KeySource::File(f) => {
                write_key_file(&pending_path(f), &new_key, true)?;
                Some(f.clone())
            }
            KeySource::Env => None,
        };
        let count = all.len();
        self.inner.store.put_credentials(all).await?;
        if let Some(f) = &key_file {
            std::fs::rename(pending_path(f), f).map_err(|e| CredentialError::Io(f.clone(), e))?;
        }
        let rotated = Rotated {
            old_key_id: old.id().to_string(),
            key_id: new_key.id().to_string(),
            credentials: count,
            key_file,
        };
        keyring.replace(new_key);
        cache.refresh(self.inner.store.as_ref()).await?;
        tracing::warn!(old_key_id = %rotated.old_key_id, key_id = %rotated.key_id, credentials = count, "master key rotated");
        Ok(rotated)
    }
}
