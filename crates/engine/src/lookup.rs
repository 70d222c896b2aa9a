//! Template lookup of `resource.NAME` (from the store, cached). Credentials: `credentials.rs`.

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
