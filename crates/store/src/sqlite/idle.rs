//! Giving memory back when the store goes quiet.
//!
//! A burst of writes (100k webhooks, say) fills the writer's page cache and the readers'
//! (up to 8 MB each), and leaves freed memory in the allocator's arenas. None of it is
//! needed once the burst is over, yet it would stay resident for the life of the process.
//! So the writer thread watches for quiet: once neither a write nor a read has happened for
//! [`IDLE_AFTER`], it releases the page cache of its connection and of every idle reader
//! (`sqlite3_db_release_memory`) and, on glibc, returns free heap pages to the OS
//! (`malloc_trim`). Under load this never runs; the first batch after it re-reads the few
//! pages it touches from the OS's file cache.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::mpsc;

use super::writer::WriteRequest;

/// How long the store must be quiet (no write, no read) before it releases its caches.
pub(super) const IDLE_AFTER: Duration = Duration::from_millis(250);

/// What the writer thread receives.
// Unboxed like the bare `WriteRequest` the channel carried before: a box would cost an
// allocation per write, and `Nudge` is rare.
#[allow(clippy::large_enum_variant)]
pub(super) enum Msg {
    /// A write to apply.
    Write(WriteRequest),
    /// A reader was used while the writer was not watching for quiet: start watching.
    Nudge,
}

/// Shared by the readers and the writer thread.
#[derive(Default)]
pub(super) struct Activity {
    /// The writer is watching for quiet (readers need not nudge it).
    watching: AtomicBool,
    /// Reads so far.
    reads: AtomicU64,
    /// Times the caches were released.
    releases: AtomicU64,
    /// The writer's page cache after the last release, in bytes.
    writer_cache_after: AtomicU64,
}

impl Activity {
    /// A reader was used; `nudge` wakes the writer when it is not watching already.
    pub(super) fn read(&self, nudge: &mpsc::WeakSender<Msg>) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        if !self.watching.swap(true, Ordering::AcqRel) {
            if let Some(tx) = nudge.upgrade() {
                // A full queue means the writer is busy and will watch after its batch.
                let _ = tx.try_send(Msg::Nudge);
            }
        }
    }

    /// Times the caches were released since the store opened.
    #[cfg(test)]
    pub(super) fn releases(&self) -> u64 {
        self.releases.load(Ordering::Acquire)
    }

    /// The writer's page cache after the last release, in bytes.
    #[cfg(test)]
    pub(super) fn writer_cache_after(&self) -> u64 {
        self.writer_cache_after.load(Ordering::Acquire)
    }
}

/// What the writer thread should do next.
#[allow(clippy::large_enum_variant)]
pub(super) enum Next {
    /// Handle this message.
    Msg(Msg),
    /// The store has been quiet for [`IDLE_AFTER`]: release the caches.
    Quiet,
    /// Every sender is gone: stop.
    Closed,
}

/// The writer thread's side: waits for the next message, or for quiet.
pub(super) struct Watch {
    activity: Arc<Activity>,
    readers: Arc<Mutex<Vec<Connection>>>,
    /// Wakes the writer thread (parked in [`Watch::next`]) when a message arrives.
    waker: Option<Waker>,
    /// When the store will count as quiet, unless something happens before.
    quiet_at: Option<Instant>,
    reads_seen: u64,
}

impl Watch {
    pub(super) fn new(activity: Arc<Activity>, readers: Arc<Mutex<Vec<Connection>>>) -> Self {
        Watch {
            activity,
            readers,
            waker: None,
            quiet_at: None,
            reads_seen: 0,
        }
    }

    /// Something happened (a batch was committed, a reader was used): watch for quiet.
    pub(super) fn busy(&mut self) {
        self.activity.watching.store(true, Ordering::Release);
        self.quiet_at = Some(Instant::now() + IDLE_AFTER);
    }

    /// The next message, or [`Next::Quiet`] once nothing has happened for [`IDLE_AFTER`].
    pub(super) fn next(&mut self, rx: &mut mpsc::Receiver<Msg>) -> Next {
        loop {
            match self.recv_until(rx, self.quiet_at) {
                Some(Some(msg)) => return Next::Msg(msg),
                Some(None) => return Next::Closed,
                None => {
                    let reads = self.activity.reads.load(Ordering::Relaxed);
                    if reads != self.reads_seen {
                        // Readers were busy meanwhile: wait for them to stop too.
                        self.reads_seen = reads;
                        self.quiet_at = Some(Instant::now() + IDLE_AFTER);
                        continue;
                    }
                    return Next::Quiet;
                }
            }
        }
    }

    /// The next message (`Some(None)` once every sender is gone), or `None` at `deadline`.
    /// The thread parks in between; a sender wakes it through the channel's waker (no
    /// runtime, no timer thread).
    fn recv_until(
        &mut self,
        rx: &mut mpsc::Receiver<Msg>,
        deadline: Option<Instant>,
    ) -> Option<Option<Msg>> {
        let waker = self
            .waker
            .get_or_insert_with(|| Waker::from(Arc::new(Unpark(std::thread::current()))))
            .clone();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(msg) = rx.poll_recv(&mut cx) {
                return Some(msg);
            }
            match deadline {
                None => std::thread::park(),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        return None;
                    }
                    std::thread::park_timeout(at - now);
                }
            }
        }
    }

    /// Releases the page cache of `writer` and of the idle readers, then free heap pages.
    pub(super) fn release(&mut self, writer: &Connection) {
        self.quiet_at = None;
        // Reads from now on nudge the writer again.
        self.activity.watching.store(false, Ordering::Release);
        self.reads_seen = self.activity.reads.load(Ordering::Relaxed);
        let mut failed = writer.release_memory().err();
        if let Ok(idle) = self.readers.lock() {
            for conn in idle.iter() {
                if let Err(e) = conn.release_memory() {
                    failed = Some(e);
                }
            }
        }
        if let Some(e) = failed {
            tracing::debug!(error = %e, "store: could not release a page cache");
        }
        trim_heap();
        self.activity
            .writer_cache_after
            .store(cache_used(writer), Ordering::Release);
        self.activity.releases.fetch_add(1, Ordering::AcqRel);
        metrics::counter!("switchyard_store_idle_releases_total").increment(1);
    }
}

/// Wakes a parked thread.
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Bytes of page cache `conn` holds (`SQLITE_DBSTATUS_CACHE_USED`).
fn cache_used(conn: &Connection) -> u64 {
    let (mut cur, mut hi) = (0, 0);
    // SAFETY: the handle is valid for the life of `conn`, which is borrowed for the call;
    // sqlite3_db_status only writes the two integers passed by pointer.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_db_status(
            conn.handle(),
            rusqlite::ffi::SQLITE_DBSTATUS_CACHE_USED,
            &mut cur,
            &mut hi,
            0,
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        u64::try_from(cur).unwrap_or(0)
    } else {
        0
    }
}

/// Returns the allocator's free pages to the OS (glibc keeps them otherwise).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; any pad is valid.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_used_counts_the_pages_a_query_read_and_release_gives_them_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let conn = Connection::open(dir.path().join("t.db")).expect("open");
        conn.execute_batch(
            "CREATE TABLE t (x BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT randomblob(1000) FROM n;",
        )
        .expect("fill");
        conn.query_row("SELECT sum(length(x)) FROM t", [], |r| r.get::<_, i64>(0))
            .expect("scan");
        assert!(cache_used(&conn) > 1_000_000, "{}", cache_used(&conn));
        let activity = Arc::new(Activity::default());
        let mut watch = Watch::new(Arc::clone(&activity), Arc::default());
        watch.release(&conn);
        assert!(cache_used(&conn) < 100_000, "{}", cache_used(&conn));
        assert_eq!(activity.releases(), 1);
    }

    async fn wait_releases(store: &super::super::SqliteStore, n: u64) {
        let activity = &store.readers.activity;
        let deadline = Instant::now() + Duration::from_secs(20);
        while activity.releases() < n {
            assert!(Instant::now() < deadline, "no release after 20 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn the_store_releases_its_caches_once_writes_and_reads_stop() {
        use crate::Store;
        let dir = tempfile::tempdir().expect("temp dir");
        let store = super::super::SqliteStore::open(super::super::SqliteConfig::new(dir.path()))
            .expect("open");
        // ~4 MB of rows through the writer, in many batches.
        let value = "x".repeat(4000);
        for i in 0..1000 {
            store
                .set_resource(&format!("r{i}"), &value)
                .await
                .expect("write");
        }
        let writes_done = Instant::now();
        wait_releases(&store, 1).await;
        assert!(writes_done.elapsed() >= IDLE_AFTER / 2);
        let after = store.readers.activity.writer_cache_after();
        assert!(
            after < 200_000,
            "writer page cache after release: {after} bytes"
        );

        // Reads alone wake the watch again: the readers' caches are released too.
        assert_eq!(store.resources().await.expect("read").len(), 1000);
        wait_releases(&store, 2).await;
        let idle = store.readers.idle.lock().expect("pool");
        assert!(!idle.is_empty());
        for conn in idle.iter() {
            assert!(
                cache_used(conn) < 200_000,
                "reader cache {}",
                cache_used(conn)
            );
        }
    }
}
