//! The master key that encrypts credentials at rest (XChaCha20-Poly1305), where it comes
//! from, and the check made at start that it opens every stored credential.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::{Digest, Sha256};
use switchyard_store::{Store, StoredCredential};

use crate::credentials::CredentialError;

/// A 32-byte key. Its id (a fingerprint, safe to show) is stored with every ciphertext.
pub struct MasterKey {
    id: String,
    key: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// A new random key (from the operating system's generator).
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        MasterKey::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"switchyard master key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        MasterKey {
            id,
            key: SecretBox::new(Box::new(bytes)),
        }
    }

    /// Parses 32 bytes written in base64 (standard or URL-safe, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(text))
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| "it is not base64".to_string())?;
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| format!("it is {} bytes; a master key is 32", decoded.len()))?;
        Ok(MasterKey::from_bytes(bytes))
    }

    /// The key's id: a fingerprint that names it without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key in base64, to write to a key file.
    pub fn to_base64(&self) -> SecretString {
        base64::engine::general_purpose::STANDARD
            .encode(self.key.expose_secret())
            .into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.expose_secret().into())
    }

    /// Encrypts `value` for the credential `name` (the name is the associated data, so the
    /// ciphertext opens only under that name): (nonce, ciphertext).
    pub(crate) fn seal(&self, name: &str, value: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let aad = associated_data(name);
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: value,
                    aad: &aad,
                },
            )
            .map_err(|_| "encryption failed".to_string())?;
        Ok((nonce.to_vec(), ciphertext))
    }

    /// Decrypts a stored credential.
    pub(crate) fn open(&self, c: &StoredCredential) -> Result<SecretString, CredentialError> {
        if c.key_id != self.id {
            return Err(CredentialError::WrongKey {
                name: c.name.clone(),
                stored: c.key_id.clone(),
                given: self.id.clone(),
            });
        }
        let undecryptable = || CredentialError::Undecryptable {
            name: c.name.clone(),
            key_id: self.id.clone(),
        };
        if c.nonce.len() != 24 {
            return Err(undecryptable());
        }
        let aad = associated_data(&c.name);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(&c.nonce),
                Payload {
                    msg: &c.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| undecryptable())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| undecryptable())
    }
}

fn associated_data(name: &str) -> Vec<u8> {
    format!("switchyard credential v1\0{name}").into_bytes()
}

/// Where the master key came from (and so where a rotated key goes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `SWITCHYARD_MASTER_KEY`: a rotation needs the new key given by the operator.
    Env,
    /// A key file: a rotation writes the new key there.
    File(PathBuf),
}

/// The master key in use; replaced atomically by a rotation.
pub struct Keyring {
    current: ArcSwap<MasterKey>,
    source: KeySource,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Keyring({:?}, {:?})",
            self.current.load().id,
            self.source
        )
    }
}

impl Keyring {
    /// A keyring holding `key`, which came from `source`.
    pub fn new(key: MasterKey, source: KeySource) -> Self {
        Keyring {
            current: ArcSwap::from_pointee(key),
            source,
        }
    }

    /// The key in use.
    pub fn current(&self) -> Arc<MasterKey> {
        self.current.load_full()
    }

    /// Where it came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    pub(crate) fn replace(&self, key: MasterKey) {
        self.current.store(Arc::new(key));
    }
}

/// The master key `serve` found.
#[derive(Debug)]
pub struct LoadedKey {
    /// The keyring for the engine.
    pub keyring: Keyring,
    /// A new key file was written (no credential existed yet).
    pub generated: bool,
    /// Credentials stored (all of which the key opens).
    pub credentials: usize,
}

/// Finds the master key: `env` (the value of `SWITCHYARD_MASTER_KEY`) first, else the key
/// file. Without either, a new key file is written (mode 0600) only while no credential is
/// stored; otherwise this fails, as it does when the key does not open every credential.
pub async fn load_master_key(
    store: &dyn Store,
    env: Option<SecretString>,
    file: &Path,
) -> Result<LoadedKey, CredentialError> {
    let stored = store.credentials().await?;
    let (key, source, generated) = if let Some(env) = env {
        let key = MasterKey::from_base64(env.expose_secret())
            .map_err(|why| CredentialError::InvalidKey(format!("SWITCHYARD_MASTER_KEY: {why}")))?;
        (key, KeySource::Env, false)
    } else if file.exists() {
        let key = read_key_file(file)?;
        let key = recover_rotation(file, key, &stored)?;
        (key, KeySource::File(file.to_path_buf()), false)
    } else if stored.is_empty() {
        let key = MasterKey::generate();
        write_key_file(file, &key, false)?;
        (key, KeySource::File(file.to_path_buf()), true)
    } else {
        return Err(CredentialError::MissingKey {
            count: stored.len(),
            file: file.to_path_buf(),
        });
    };
    for c in &stored {
        key.open(c)?;
    }
    Ok(LoadedKey {
        keyring: Keyring::new(key, source),
        generated,
        credentials: stored.len(),
    })
}

/// A rotation writes `FILE.new`, commits the re-encrypted credentials, then renames the
/// file over `FILE`. If the process stopped between the last two steps, finish the rename.
fn recover_rotation(
    file: &Path,
    key: MasterKey,
    stored: &[StoredCredential],
) -> Result<MasterKey, CredentialError> {
    let pending = pending_path(file);
    let Some(first) = stored.first() else {
        return Ok(key);
    };
    if first.key_id == key.id() || !pending.exists() {
        return Ok(key);
    }
    let next = read_key_file(&pending)?;
    if next.id() != first.key_id {
        return Ok(key);
    }
    std::fs::rename(&pending, file).map_err(|e| CredentialError::Io(file.to_path_buf(), e))?;
    tracing::warn!(file = %file.display(), key_id = next.id(), "finished an interrupted master key rotation");
    Ok(next)
}

pub(crate) fn pending_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    file.with_file_name(name)
}

fn read_key_file(file: &Path) -> Result<MasterKey, CredentialError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| CredentialError::Io(file.to_path_buf(), e))?;
    let text = SecretString::from(text);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(file) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(file = %file.display(), "the master key file is readable by other users: chmod 600 it");
            }
        }
    }
    MasterKey::from_base64(text.expose_secret())
        .map_err(|why| CredentialError::InvalidKey(format!("{}: {why}", file.display())))
}

/// Writes a key file readable by its owner only; `replace` allows overwriting.
pub(crate) fn write_key_file(
    file: &Path,
    key: &MasterKey,
    replace: bool,
) -> Result<(), CredentialError> {
    use std::io::Write as _;
    let io = |e| CredentialError::Io(file.to_path_buf(), e);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(file).map_err(io)?;
    f.write_all(key.to_base64().expose_secret().as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .and_then(|_| f.sync_all())
        .map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(key: &MasterKey, name: &str, value: &str) -> StoredCredential {
        let (nonce, ciphertext) = key.seal(name, value.as_bytes()).unwrap();
        StoredCredential {
            name: name.into(),
            key_id: key.id().into(),
            nonce,
            ciphertext,
            allowed_hosts: Vec::new(),
            created_at: switchyard_types::now(),
            updated_at: switchyard_types::now(),
        }
    }

    #[test]
    fn seal_and_open_round_trip_without_the_value_in_the_ciphertext() {
        let key = MasterKey::generate();
        let c = stored(&key, "github_token", "ghp_secret_value_123");
        assert!(!c.ciphertext.windows(10).any(|w| w == b"ghp_secret"));
        assert_eq!(
            key.open(&c).unwrap().expose_secret(),
            "ghp_secret_value_123"
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_name_does_not_open() {
        let key = MasterKey::generate();
        let mut c = stored(&key, "github_token", "v");
        c.name = "other".into();
        assert!(matches!(
            key.open(&c),
            Err(CredentialError::Undecryptable { .. })
        ));
    }

    #[test]
    fn another_key_is_refused_by_id_and_by_tag() {
        let key = MasterKey::generate();
        let other = MasterKey::generate();
        let mut c = stored(&key, "a", "v");
        assert!(matches!(
            other.open(&c),
            Err(CredentialError::WrongKey { .. })
        ));
        c.key_id = other.id().into();
        assert!(matches!(
            other.open(&c),
            Err(CredentialError::Undecryptable { .. })
        ));
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(key.to_base64().expose_secret()).unwrap();
        assert_eq!(key.id(), again.id());
        assert!(MasterKey::from_base64("c2hvcnQ=")
            .unwrap_err()
            .contains("32"));
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn key_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("master.key");
        let key = MasterKey::generate();
        write_key_file(&file, &key, false).unwrap();
        assert!(
            write_key_file(&file, &key, false).is_err(),
            "never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_key_file(&file).unwrap().id(), key.id());
    }

    #[tokio::test]
    async fn loading_generates_only_for_an_empty_store_and_finishes_a_rotation() {
        use switchyard_store::sqlite::{SqliteConfig, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteConfig::new(dir.path().join("db"))).unwrap();
        let file = dir.path().join("master.key");
        let loaded = load_master_key(&store, None, &file).await.unwrap();
        assert!(loaded.generated && file.exists());
        let old = loaded.keyring.current();

        // A rotation that stopped after the commit, before the rename.
        let new = MasterKey::generate();
        write_key_file(&pending_path(&file), &new, true).unwrap();
        store
            .put_credentials(vec![stored(&new, "api", "v")])
            .await
            .unwrap();
        let loaded = load_master_key(&store, None, &file).await.unwrap();
        assert!(!loaded.generated);
        assert_eq!(loaded.keyring.current().id(), new.id());
        assert_ne!(old.id(), new.id());
        assert!(!pending_path(&file).exists());
        assert_eq!(read_key_file(&file).unwrap().id(), new.id());

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            load_master_key(&store, None, &file).await,
            Err(CredentialError::MissingKey { count: 1, .. })
        ));
        let env = Some(SecretString::from(
            new.to_base64().expose_secret().to_string(),
        ));
        let loaded = load_master_key(&store, env, &file).await.unwrap();
        assert_eq!(loaded.keyring.source(), &KeySource::Env);
        assert!(!file.exists(), "a key from the environment writes no file");
    }
}
