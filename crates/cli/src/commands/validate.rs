//! `switchyard validate [PATH…]`.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard_story::load::story_files;
use switchyard_story::{load_file, Diagnostic};

/// Checks every story file under `paths` (default `./stories`); prints every problem.
pub fn run(paths: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let default = [PathBuf::from("stories")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found = story_files(p);
            found.sort();
            files.extend(found);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    let mut diagnostics: Vec<Diagnostic> = Vec::new();
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    let mut loaded_stories = Vec::new();
    for file in &files {
        let loaded = load_file(file);
        diagnostics.extend(loaded.diagnostics);
        if let Some(story) = loaded.story {
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == *story.name) {
                diagnostics.push(
                    Diagnostic::error(
                        file,
                        switchyard_story::yaml::Position { line: 1, column: 1 },
                        format!(
                            "story name `{}` is already used by {}",
                            story.name,
                            first.display()
                        ),
                    )
                    .with_hint("story names must be unique"),
                );
            }
            names.push((story.name.to_string(), file.clone()));
            loaded_stories.push(story);
        }
    }
    diagnostics.extend(switchyard_story::check_references(&loaded_stories));
    let stories = loaded_stories.len();
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "files": files.len(), "stories": stories, "errors": errors, "warnings": warnings, "diagnostics": diagnostics,
            }))?
        );
    } else {
        for d in &diagnostics {
            eprintln!("{d}");
        }
        let summary = format!(
            "{} file(s) checked: {errors} error(s), {warnings} warning(s)",
            files.len()
        );
        if errors > 0 {
            eprintln!("{summary}");
        } else {
            println!("{summary}");
        }
    }
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
