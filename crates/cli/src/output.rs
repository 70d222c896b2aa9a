//! Human output: aligned tables and short times.

use serde_json::Value;

/// Prints rows under a header, each column as wide as its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{:<w$}  ", c, w = widths[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A JSON field as display text ("" for null).
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time shortened to `YYYY-MM-DD HH:MM:SS`.
pub fn time(v: &Value) -> String {
    let s = text(v);
    s.get(..19).map(|t| t.replace('T', " ")).unwrap_or(s)
}

/// Milliseconds between two RFC 3339 times, if both are set.
pub fn duration_ms(start: &Value, end: &Value) -> Option<i64> {
    let a = chrono::DateTime::parse_from_rfc3339(start.as_str()?).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(end.as_str()?).ok()?;
    Some((b - a).num_milliseconds())
}

/// Pretty JSON.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}
