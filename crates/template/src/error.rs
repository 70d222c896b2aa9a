//! Template errors: what went wrong, in words a story author can act on.

use std::fmt;

/// What kind of problem a template ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The template (or expression, or JSONPath) does not parse.
    Syntax,
    /// A variable, key, credential or resource that does not exist was used.
    Undefined,
    /// Any other failure while rendering (bad operation, bad types, …).
    Render,
    /// The template did too much work (ran out of fuel).
    Fuel,
    /// The rendered output exceeded the configured maximum size.
    OutputTooLarge,
    /// A filter failed or does not exist.
    Filter,
}

impl ErrorKind {
    /// A stable lower-case name: `syntax`, `undefined`, `render`, `fuel`, `output_too_large`, `filter`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "syntax",
            ErrorKind::Undefined => "undefined",
            ErrorKind::Render => "render",
            ErrorKind::Fuel => "fuel",
            ErrorKind::OutputTooLarge => "output_too_large",
            ErrorKind::Filter => "filter",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A template error: a kind, a message for story authors and, when known, the line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}{}", line_suffix(*.show_line, *.line))]
pub struct Error {
    /// What kind of problem this is.
    pub kind: ErrorKind,
    /// The message, e.g. ``undefined value `inbound.body.nope` ``.
    pub message: String,
    /// 1-based line inside the template source, when known.
    pub line: Option<usize>,
    /// Whether `Display` mentions the line (only for multi-line sources).
    show_line: bool,
}

fn line_suffix(show: bool, line: Option<usize>) -> String {
    match (show, line) {
        (true, Some(l)) => format!(" (line {l})"),
        _ => String::new(),
    }
}

impl Error {
    /// Creates an error without line information.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            line: None,
            show_line: false,
        }
    }

    /// Sets the line and whether `Display` mentions it.
    pub(crate) fn set_line(&mut self, line: Option<usize>, show: bool) {
        self.line = line;
        self.show_line = show;
    }

    /// Converts a minijinja error raised while compiling or rendering `source`.
    ///
    /// `offset` is the number of bytes the compiled text has in front of `source`
    /// (for wrapped expressions), so spans can be mapped back to the author's text.
    pub(crate) fn from_minijinja(err: &minijinja::Error, source: &str, offset: usize) -> Self {
        use minijinja::ErrorKind as K;
        let marker = find_marker(err);
        let kind = match (marker, err.kind()) {
            (Some(Marker::Filter), _) => ErrorKind::Filter,
            (Some(Marker::Unknown), _) => ErrorKind::Undefined,
            (_, K::SyntaxError | K::BadEscape) => ErrorKind::Syntax,
            (_, K::UndefinedError) => ErrorKind::Undefined,
            (_, K::OutOfFuel) => ErrorKind::Fuel,
            (_, K::UnknownFilter) => ErrorKind::Filter,
            _ => ErrorKind::Render,
        };
        let snippet = err
            .range()
            .and_then(|r| {
                let start = r.start.checked_sub(offset)?;
                let end = r.end.checked_sub(offset)?;
                source.get(extend_to_base(source, start)..end)
            })
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= 200);
        let mut message = match (marker, err.detail()) {
            (Some(_), Some(detail)) => detail.to_string(),
            (None, Some(detail)) => format!("{}: {}", err.kind(), detail),
            (_, None) => err.kind().to_string(),
        };
        if let Some(snippet) = snippet {
            match kind {
                ErrorKind::Undefined if unset_resource(snippet).is_some() => {
                    let name = unset_resource(snippet).unwrap_or_default();
                    message = format!("unknown resource {name} (in `{snippet}`)");
                }
                ErrorKind::Undefined if marker.is_none() && err.detail().is_none() => {
                    message = if after_pipe(source, err.range(), offset) {
                        format!("{message} passed to filter `{snippet}`")
                    } else {
                        format!("{message} `{snippet}`")
                    };
                }
                ErrorKind::Syntax | ErrorKind::Fuel => {}
                _ => message = format!("{message} (in `{snippet}`)"),
            }
        }
        if kind == ErrorKind::Fuel {
            message.push_str(" (the template does too much work)");
        }
        // Chained causes that are not our own markers (e.g. errors from nested calls).
        let mut cause = std::error::Error::source(err);
        while let Some(c) = cause {
            if c.downcast_ref::<FilterFailure>().is_none()
                && c.downcast_ref::<UnknownName>().is_none()
            {
                let text = match c.downcast_ref::<minijinja::Error>() {
                    Some(inner) => match inner.detail() {
                        Some(d) => format!("{}: {}", inner.kind(), d),
                        None => inner.kind().to_string(),
                    },
                    None => c.to_string(),
                };
                message = format!("{message}: {text}");
            }
            cause = c.source();
        }
        Error {
            kind,
            message,
            line: err.line(),
            show_line: source.contains('\n'),
        }
    }
}

/// The name in a snippet that is exactly `resource.NAME` (an unset resource is undefined).
fn unset_resource(snippet: &str) -> Option<&str> {
    let name = snippet.strip_prefix("resource.")?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

/// Whether the span starts right after a `|` (i.e. names a filter).
fn after_pipe(source: &str, range: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    range
        .and_then(|r| r.start.checked_sub(offset))
        .and_then(|start| source.get(..start))
        .is_some_and(|before| before.trim_end().ends_with('|'))
}

/// minijinja's span for `a.b.c` can start at `.b`; walk back to include the base `a`
/// (identifiers, dots and bracketed subscripts).
fn extend_to_base(source: &str, start: usize) -> usize {
    let bytes = source.as_bytes();
    if !matches!(bytes.get(start), Some(b'.' | b'[')) {
        return start;
    }
    let mut i = start;
    while i > 0 {
        let c = bytes[i - 1];
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' {
            i -= 1;
        } else if c == b']' {
            match bytes[..i - 1].iter().rposition(|&b| b == b'[') {
                Some(open) => i = open,
                None => break,
            }
        } else {
            break;
        }
    }
    if source.is_char_boundary(i) {
        i
    } else {
        start
    }
}

#[derive(Clone, Copy)]
enum Marker {
    Filter,
    Unknown,
}

fn find_marker(err: &minijinja::Error) -> Option<Marker> {
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        if c.downcast_ref::<FilterFailure>().is_some() {
            return Some(Marker::Filter);
        }
        if c.downcast_ref::<UnknownName>().is_some() {
            return Some(Marker::Unknown);
        }
        cause = c.source();
    }
    None
}

/// Marks a minijinja error as raised by one of our filters.
#[derive(Debug, thiserror::Error)]
#[error("filter failed")]
pub(crate) struct FilterFailure;

/// Marks a minijinja error as an unknown credential or resource.
#[derive(Debug, thiserror::Error)]
#[error("unknown name")]
pub(crate) struct UnknownName;

/// Builds the minijinja error a filter returns.
pub(crate) fn filter_error(filter: &str, message: impl fmt::Display) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("filter `{filter}`: {message}"),
    )
    .with_source(FilterFailure)
}

/// Builds the error for an unknown credential or resource.
pub(crate) fn unknown_name(what: &str, name: &str) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("unknown {what} {name}"),
    )
    .with_source(UnknownName)
}
