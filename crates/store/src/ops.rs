//! The units of writing shared by the stores' group-commit writers.

use std::sync::Arc;

use switchyard_types::{JobId, RunId};

use crate::{
    ApiToken, AuditEntry, FinishJob, Finished, ImplodeAdd, NewJob, Pruned, Reschedule, StartRun,
    Started, StateScope, StoredCredential,
};

/// One write: what a caller asks the writer to commit. Times are microseconds since the epoch.
pub enum WriteOp {
    Start(StartRun),
    Finish(FinishJob),
    Reschedule(Reschedule),
    Replay(RunId, Vec<NewJob>),
    SetResource(String, String, i64),
    SetStoryEnabled(String, bool, i64),
    Prune {
        before: i64,
        max_rows: usize,
    },
    Admit {
        scope: StateScope,
        key: String,
        job: JobId,
        now: i64,
        window_micros: i64,
        limit: u32,
    },
    ImplodeAdd {
        scope: StateScope,
        key: String,
        job: JobId,
        now: i64,
        item: Arc<str>,
        size: usize,
    },
    ImplodeFlush {
        scope: StateScope,
        key: String,
        job: JobId,
    },
    DeleteResource(String),
    /// Take a job for a worker (PostgreSQL only).
    Claim {
        job: JobId,
        owner: Arc<str>,
        lease_micros: i64,
    },
    Security(SecurityOp),
}

/// Writes of credentials, API tokens and the audit log.
pub enum SecurityOp {
    PutCredentials(Vec<StoredCredential>),
    DeleteCredential(String),
    CreateToken(ApiToken),
    /// Revoke by id or name, at a time in microseconds.
    RevokeToken(String, i64),
    RecordAudit(AuditEntry),
}

/// What a write did.
pub enum WriteReply {
    Started(Started),
    Finished(Finished),
    Done,
    Changed(usize),
    Admitted(bool),
    Imploded(ImplodeAdd),
    Flushed(Option<Vec<String>>),
    Pruned(Pruned),
    Claimed(crate::Claim),
}
