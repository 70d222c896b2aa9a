//! Checks across stories: a `story` agent must name a loaded story, a webhook agent of it as
//! `entry`, and (when it waits) an agent of it as `exit`.

use crate::{yaml, Diagnostic, Story};

/// Problems with the references between `stories` (the set loaded or validated together),
/// each at the file, line and column of the option that names what is missing.
pub fn check_references(stories: &[Story]) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for story in stories {
        let mut spans = None;
        for (i, agent) in story.agents.iter().enumerate() {
            if agent.kind != "story" {
                continue;
            }
            let option = |name: &str| agent.options.get(name).and_then(|v| v.as_str());
            let Some(target) = option("story") else {
                continue;
            };
            let entry = option("entry").unwrap_or("entry");
            let wait = agent.options.get("wait").and_then(|v| v.as_bool()) == Some(true);
            let exit = option("exit").unwrap_or("exit");
            let problem = match stories.iter().find(|s| &*s.name == target) {
                None => Some((
                    "story",
                    format!("no story named `{target}` is among the stories checked"),
                    format!(
                        "stories here: {}",
                        stories
                            .iter()
                            .map(|s| s.name.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
                Some(child) => match child.agent(entry) {
                    None => Some((
                        if agent.options.get("entry").is_some() { "entry" } else { "story" },
                        format!("story `{target}` has no agent `{entry}` to start it through"),
                        "`entry` names a webhook agent of the other story (default `entry`)"
                            .to_string(),
                    )),
                    Some(def) if def.kind != "webhook" => Some((
                        if agent.options.get("entry").is_some() { "entry" } else { "story" },
                        format!(
                            "agent `{entry}` of story `{target}` is a `{}` agent, not a webhook",
                            def.kind
                        ),
                        "a story is started through one of its webhook agents".to_string(),
                    )),
                    Some(_) if wait && child.agent(exit).is_none() => Some((
                        if agent.options.get("exit").is_some() { "exit" } else { "wait" },
                        format!("story `{target}` has no agent `{exit}` whose event to wait for"),
                        "`exit` names the agent of the other story whose event is the result (default `exit`)"
                            .to_string(),
                    )),
                    Some(_) => None,
                },
            };
            if let Some((field, message, hint)) = problem {
                let spans =
                    spans.get_or_insert_with(|| yaml::parse(&story.source).map(|(_, s)| s).ok());
                let at = spans
                    .as_ref()
                    .map(|s| s.value(&format!("/agents/{i}/{field}")))
                    .unwrap_or(yaml::Position { line: 1, column: 1 });
                out.push(Diagnostic::error(&story.file, at, message).with_hint(hint));
            }
        }
    }
    out
}
