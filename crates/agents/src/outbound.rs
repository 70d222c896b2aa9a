//! Checks made before every outgoing request and every redirect hop: the SSRF guard for
//! IP-literal hosts, and the allowed hosts of the credentials the request's templates read.

use crate::ssrf::{host_matches, Refused};
use crate::{AgentError, ExecContext};

/// Refuses a destination the request may not reach: kind `ssrf` or `credential_host`.
pub(crate) fn check_destination(cx: &ExecContext<'_>, url: &url::Url) -> Result<(), AgentError> {
    cx.services
        .network
        .check_url(url)
        .map_err(|r| ssrf_error(&r))?;
    check_credential_hosts(cx, url.host_str().unwrap_or_default())
}

/// Refuses sending to `host` when a credential read so far in this execution (by its
/// templates, or by the agent itself) is bound to other hosts: kind `credential_host`.
pub(crate) fn check_credential_hosts(cx: &ExecContext<'_>, host: &str) -> Result<(), AgentError> {
    let Some(policy) = &cx.services.credential_hosts else {
        return Ok(());
    };
    let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
    for (name, _) in cx.templates.credentials_used() {
        let Some(allowed) = policy.allowed_hosts(&name).filter(|a| !a.is_empty()) else {
            continue;
        };
        if !allowed
            .iter()
            .any(|a| host_matches(&a.trim_matches(['[', ']']).to_ascii_lowercase(), &host))
        {
            return Err(AgentError::permanent(
                "credential_host",
                format!(
                    "credential `{name}` may only be sent to {}, not to `{host}`",
                    allowed.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The error event for a refused destination.
pub(crate) fn ssrf_error(r: &Refused) -> AgentError {
    AgentError::permanent("ssrf", r.to_string())
}
