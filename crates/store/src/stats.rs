use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the group-commit writer.
#[derive(Debug, Default)]
pub struct CommitStats {
    commits: AtomicU64,
    writes: AtomicU64,
    max_batch: AtomicU64,
    commit_micros: AtomicU64,
    retried_batches: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitStatsSnapshot {
    /// Transactions committed.
    pub commits: u64,
    /// Writes (units) committed.
    pub writes: u64,
    /// Largest batch seen.
    pub max_batch: u64,
    /// Total time spent committing, in microseconds.
    pub commit_micros: u64,
    /// Batches in which a write failed, so that the batch was rolled back and redone
    /// write by write (each in its own savepoint). Zero while every write succeeds.
    pub retried_batches: u64,
}

impl CommitStats {
    /// Records one commit of `batch` writes that took `micros`.
    pub fn record(&self, batch: usize, micros: u64) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(batch as u64, Ordering::Relaxed);
        self.max_batch.fetch_max(batch as u64, Ordering::Relaxed);
        self.commit_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records a batch that had to be redone write by write.
    pub fn record_retry(&self) {
        self.retried_batches.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> CommitStatsSnapshot {
        CommitStatsSnapshot {
            commits: self.commits.load(Ordering::Relaxed),
            writes: self.writes.load(Ordering::Relaxed),
            max_batch: self.max_batch.load(Ordering::Relaxed),
            commit_micros: self.commit_micros.load(Ordering::Relaxed),
            retried_batches: self.retried_batches.load(Ordering::Relaxed),
        }
    }
}
