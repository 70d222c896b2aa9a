//! Reloads the stories (and packs) directories when files change.

use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::Engine;

/// Watches the stories directory; a change is applied after a short quiet period.
pub fn spawn(engine: Engine) {
    let dir = engine.inner.config.stories_dir.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            if !event.kind.is_access() {
                let _ = tx.try_send(());
            }
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the stories directory; reload with a restart");
            return;
        }
    };
    if let Err(e) = watcher.watch(&dir, RecursiveMode::Recursive) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the stories directory; reload with a restart");
        return;
    }
    if let Some(packs) = engine
        .inner
        .config
        .packs_dir
        .as_ref()
        .filter(|d| d.is_dir())
    {
        if let Err(e) = watcher.watch(packs, RecursiveMode::Recursive) {
            tracing::warn!(dir = %packs.display(), error = %e, "cannot watch the packs directory; reload with a restart");
        }
    }
    let cancel = engine.cancelled();
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                got = rx.recv() => if got.is_none() { break },
            }
            // Let a burst of changes (editors write several times) settle.
            tokio::time::sleep(Duration::from_millis(300)).await;
            while rx.try_recv().is_ok() {}
            let e = engine.clone();
            let _ = tokio::task::spawn_blocking(move || e.reload()).await;
        }
    });
}
