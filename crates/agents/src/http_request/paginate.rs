//! `http_request` `paginate`: follows the next page from a `Link` header or a URL in the body.
//!
//! The event is the first page's `{status, headers, body}` plus `pages` (every page's body,
//! in order), `items` (when `items` is given: the items of every page, concatenated) and
//! `next` (the URL of the page not fetched because `max_pages` was reached; null when the
//! last page was read). Further pages are `GET` requests with the same headers, except that
//! `Authorization` is not sent to another origin than the first request's. A page that
//! fails (status outside `expect`, connection error) fails the whole call.

use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, LINK};
use reqwest::{Method, Url};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_template::JsonPath;

use super::{redact_url, HttpRequest, Response};
use crate::{AgentError, BuildContext, ExecContext};

/// Largest `max_pages`.
const MAX_PAGES_LIMIT: u32 = 1000;

/// How to find further pages.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PaginateOptions {
    /// Where the next page's URL is: `link_header` (the `Link: <…>; rel="next"` header, as
    /// GitHub and RFC 8288 do), or a JSONPath into the body (`$.links.next`). No next URL
    /// (missing, null or empty) ends the pagination.
    pub next: String,
    /// A JSONPath to each page's items (`$.data`): the event's `items` concatenates them.
    #[serde(default)]
    pub items: Option<String>,
    /// The most pages fetched, the first included (default 10).
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_pages: u32,
}

fn ten() -> u32 {
    10
}

/// Built pagination.
#[derive(Debug)]
pub(crate) struct Paginate {
    next: Next,
    items: Option<JsonPath>,
    max_pages: u32,
}

#[derive(Debug)]
enum Next {
    LinkHeader,
    Body(JsonPath),
}

impl Paginate {
    /// Compiles the options; records problems under `/paginate`.
    pub(crate) fn build(o: PaginateOptions, cx: &mut BuildContext<'_>) -> Option<Paginate> {
        let next = if o.next == "link_header" {
            Some(Next::LinkHeader)
        } else {
            match JsonPath::parse(&o.next) {
                Ok(p) => Some(Next::Body(p)),
                Err(e) => {
                    cx.error_with_hint(
                        "/paginate/next",
                        format!("bad JSONPath: {e}"),
                        "`link_header`, or a JSONPath to the next URL in the body: `$.links.next`",
                    );
                    None
                }
            }
        };
        let items = match o.items.as_deref().map(JsonPath::parse) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                cx.error("/paginate/items", format!("bad JSONPath: {e}"));
                None
            }
        };
        if !(1..=MAX_PAGES_LIMIT).contains(&o.max_pages) {
            cx.error(
                "/paginate/max_pages",
                format!("`max_pages` is between 1 and {MAX_PAGES_LIMIT}"),
            );
        }
        Some(Paginate {
            next: next?,
            items,
            max_pages: o.max_pages.clamp(1, MAX_PAGES_LIMIT),
        })
    }

    /// Fetches the pages after `first`; returns the event.
    pub(crate) async fn follow(
        &self,
        agent: &HttpRequest,
        cx: &ExecContext<'_>,
        first: Response,
        mut headers: HeaderMap,
    ) -> Result<Value, AgentError> {
        headers.remove(CONTENT_TYPE);
        let origin = first.url.origin();
        let mut seen = vec![first.url.clone()];
        let mut pages = Vec::new();
        let mut items = Vec::new();
        let mut next = self.next_url(&first)?;
        self.collect(&first.body, &mut items);
        pages.push(first.body.clone());
        while let Some(url) = next.take() {
            if pages.len() as u32 >= self.max_pages {
                next = Some(url);
                break;
            }
            if seen.contains(&url) {
                // A page pointing back at one already read: stop rather than loop.
                break;
            }
            seen.push(url.clone());
            let mut page_headers = headers.clone();
            if url.origin() != origin {
                page_headers.remove(AUTHORIZATION);
            }
            let page = agent.send(cx, Method::GET, url, page_headers, None).await?;
            next = self.next_url(&page)?;
            self.collect(&page.body, &mut items);
            pages.push(page.body);
        }
        let mut out = Map::with_capacity(7);
        out.insert("status".into(), Value::from(first.status.as_u16()));
        out.insert("headers".into(), Value::Object(first.headers));
        out.insert("body".into(), first.body);
        out.insert("pages".into(), Value::Array(pages));
        if self.items.is_some() {
            out.insert("items".into(), Value::Array(items));
        }
        out.insert(
            "next".into(),
            next.map_or(Value::Null, |u| Value::String(redact_url(&u))),
        );
        Ok(Value::Object(out))
    }

    fn collect(&self, body: &Value, items: &mut Vec<Value>) {
        let Some(path) = &self.items else { return };
        match path.query(body).as_slice() {
            [Value::Array(list)] => items.extend(list.iter().cloned()),
            found => items.extend(found.iter().map(|v| (*v).clone())),
        }
    }

    /// The next page's URL, resolved against the page's own URL.
    fn next_url(&self, page: &Response) -> Result<Option<Url>, AgentError> {
        let found = match &self.next {
            Next::LinkHeader => next_link(&page.raw_headers),
            Next::Body(path) => match path.first(&page.body) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(other) => {
                    return Err(AgentError::permanent(
                        "paginate",
                        format!(
                            "`paginate.next` ({}) found {other} in the body of {}, not a URL",
                            path.source(),
                            redact_url(&page.url)
                        ),
                    ))
                }
            },
        };
        let Some(text) = found.filter(|s| !s.trim().is_empty()) else {
            return Ok(None);
        };
        let url = page.url.join(text.trim()).map_err(|e| {
            AgentError::permanent(
                "paginate",
                format!("the next page `{text}` is not a valid URL: {e}"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AgentError::permanent(
                "paginate",
                format!("the next page `{text}`: only http and https URLs can be called"),
            ));
        }
        Ok(Some(url))
    }
}

/// The target of the first `rel="next"` link in the `Link` headers (RFC 8288).
fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(LINK) {
        let Ok(text) = value.to_str() else { continue };
        let mut rest = text;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>')?;
            let target = &rest[open + 1..open + close];
            let after = &rest[open + close + 1..];
            // Parameters run to the next link (a `,` followed by `<`) or the end.
            let params_end = after
                .match_indices(',')
                .map(|(c, _)| c)
                .find(|&c| after[c + 1..].trim_start().starts_with('<'));
            let params = &after[..params_end.unwrap_or(after.len())];
            if is_next(params) {
                return Some(target.to_string());
            }
            rest = &after[params_end.map_or(after.len(), |c| c + 1)..];
        }
    }
    None
}

/// Whether link parameters (`; rel="next"; title=…`) include relation type `next`.
fn is_next(params: &str) -> bool {
    params.split(';').any(|p| {
        let Some((name, value)) = p.split_once('=') else {
            return false;
        };
        name.trim().eq_ignore_ascii_case("rel")
            && value
                .trim()
                .trim_matches('"')
                .split_ascii_whitespace()
                .any(|r| r.eq_ignore_ascii_case("next"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn link(values: &[&str]) -> Option<String> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(LINK, HeaderValue::from_str(v).unwrap());
        }
        next_link(&h)
    }

    #[test]
    fn finds_rel_next_in_link_headers() {
        assert_eq!(
            link(&[
                r#"<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last""#
            ]),
            Some("https://api.github.com/x?page=2".into())
        );
        assert_eq!(
            link(&[r#"<https://a/x?page=1>; rel="prev", <https://a/x?page=3>; rel=next"#]),
            Some("https://a/x?page=3".into())
        );
        assert_eq!(
            link(&[r#"</x?a=1,2>; title="a, b"; rel="last next""#]),
            Some("/x?a=1,2".into())
        );
        assert_eq!(
            link(&[
                r#"<https://a/1>; rel="first""#,
                r#"<https://a/2>; REL="Next""#
            ]),
            Some("https://a/2".into())
        );
        assert_eq!(
            link(&[r#"<https://a/1>; title="x, y"; rel=prev, <https://a/3>; rel=next"#]),
            Some("https://a/3".into())
        );
        assert_eq!(link(&[r#"<https://a/x?page=1>; rel="prev""#]), None);
        assert_eq!(link(&[r#"<https://a/nextpage>; rel="nextish""#]), None);
        assert_eq!(link(&[]), None);
        assert_eq!(link(&["garbage <unterminated"]), None);
    }
}
