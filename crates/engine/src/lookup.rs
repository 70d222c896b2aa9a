//! Template lookups: `resource.NAME` (from the store, cached) and `credential.NAME`.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use switchyard_store::Store;
use switchyard_template::Lookup;

/// The shared values, cached in memory; refreshed when they change.
#[derive(Debug, Default)]
pub struct ResourceCache {
    values: ArcSwap<HashMap<String, String>>,
}

impl ResourceCache {
    /// Reads every resource from the store.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), switchyard_store::Error> {
        let all = store.resources().await?;
        self.values.store(Arc::new(
            all.into_iter().map(|r| (r.name, r.value)).collect(),
        ));
        Ok(())
    }
}

impl Lookup for ResourceCache {
    fn get(&self, name: &str) -> Option<String> {
        self.values.load().get(name).cloned()
    }
}

/// Stop-gap credentials until the encrypted credential store exists: `credential.NAME` is
/// the server's environment variable `SWITCHYARD_CREDENTIAL_NAME` (the name upper-cased,
/// `-` and `.` as `_`). Only variables with that prefix are readable, so the rest of the
/// server's environment stays out of templates.
#[derive(Debug, Default)]
pub struct EnvCredentials;

/// Prefix of the environment variables [`EnvCredentials`] reads.
pub const CREDENTIAL_ENV_PREFIX: &str = "SWITCHYARD_CREDENTIAL_";

impl EnvCredentials {
    /// The environment variable that holds credential `name`.
    pub fn variable(name: &str) -> String {
        let mut var = String::with_capacity(CREDENTIAL_ENV_PREFIX.len() + name.len());
        var.push_str(CREDENTIAL_ENV_PREFIX);
        var.extend(name.chars().map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        }));
        var
    }
}

impl Lookup for EnvCredentials {
    fn get(&self, name: &str) -> Option<String> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return None;
        }
        std::env::var(Self::variable(name)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_names_map_to_prefixed_variables() {
        assert_eq!(
            EnvCredentials::variable("smtp"),
            "SWITCHYARD_CREDENTIAL_SMTP"
        );
        assert_eq!(
            EnvCredentials::variable("github-token.v2"),
            "SWITCHYARD_CREDENTIAL_GITHUB_TOKEN_V2"
        );
        // Names that could reach outside the prefix are refused outright.
        assert_eq!(EnvCredentials.get("=PATH"), None);
        assert_eq!(EnvCredentials.get(""), None);
    }
}
