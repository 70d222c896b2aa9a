use std::time::Duration;

/// Why an agent execution failed, and whether trying again may help.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AgentError {
    /// A stable kind: `http_status`, `http`, `timeout`, `template`, `invalid_output`, …
    pub kind: &'static str,
    /// What happened, for the run's error event.
    pub message: String,
    /// Whether another try may succeed (5xx, 429, timeouts, connection errors).
    pub retryable: bool,
    /// The server asked us to wait this long before trying again (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl AgentError {
    /// A failure that another try will not fix.
    pub fn permanent(kind: &'static str, message: impl Into<String>) -> Self {
        AgentError {
            kind,
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// A failure that another try may fix.
    pub fn transient(kind: &'static str, message: impl Into<String>) -> Self {
        AgentError {
            retryable: true,
            ..AgentError::permanent(kind, message)
        }
    }
}

impl From<switchyard_template::Error> for AgentError {
    fn from(e: switchyard_template::Error) -> Self {
        AgentError::permanent("template", e.to_string())
    }
}
