//! `switchyard validate [PATH…]`: stories and packs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use switchyard_story::load::story_files;
use switchyard_story::pack::{is_pack_dir, is_packs_dir, load_pack_dirs};
use switchyard_story::{load_file_with, Diagnostic, Packs};

/// What the paths given to `validate` (or `test`) name.
#[derive(Debug, Default)]
pub struct Targets {
    /// Story files.
    pub stories: Vec<PathBuf>,
    /// Pack directories.
    pub packs: Vec<PathBuf>,
}

/// Sorts paths into story files and pack directories: a directory with `pack.yaml` is a
/// pack, a directory of such directories holds packs, `pack.yaml` and files under a pack's
/// `actions/` name their pack; anything else holds stories.
pub fn classify(paths: &[PathBuf]) -> anyhow::Result<Targets> {
    let mut t = Targets::default();
    for p in paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
        if let Some(pack) = pack_of(p) {
            t.packs.push(pack);
        } else if p.is_dir() && is_packs_dir(p) {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(p)?
                .flatten()
                .map(|e| e.path())
                .filter(|d| d.is_dir())
                .collect();
            dirs.sort();
            t.packs.extend(dirs);
        } else if p.is_dir() {
            let mut found = story_files(p);
            found.sort();
            t.stories.extend(found);
        } else {
            t.stories.push(p.clone());
        }
    }
    t.packs.dedup();
    Ok(t)
}

/// The pack a path belongs to: the pack directory itself, its `pack.yaml`, or one of its
/// action files.
fn pack_of(p: &Path) -> Option<PathBuf> {
    if p.is_dir() {
        return is_pack_dir(p).then(|| p.to_path_buf());
    }
    let parent = p.parent()?;
    if p.file_name().is_some_and(|n| n == "pack.yaml") {
        return Some(parent.to_path_buf());
    }
    if parent.file_name().is_some_and(|n| n == "actions") {
        let pack = parent.parent()?;
        return is_pack_dir(pack).then(|| pack.to_path_buf());
    }
    None
}

/// The packs that stories are checked against: the packs given among the paths, else the
/// `--packs` directory (problems in the latter are not reported: they are not what was
/// asked about, and an action that failed to load shows up as unknown in the story).
pub fn packs_for(targets: &Targets, packs_dir: &Path) -> (Packs, Vec<Diagnostic>, bool) {
    if !targets.packs.is_empty() {
        let (packs, diagnostics) = load_pack_dirs(&targets.packs);
        return (packs, diagnostics, true);
    }
    let (packs, _) = switchyard_story::load_packs(packs_dir);
    (packs, Vec::new(), false)
}

/// Checks every story and pack under `paths` (default `./stories` and `./packs`); prints
/// every problem.
pub fn run(paths: &[PathBuf], packs_dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let defaults: Vec<PathBuf> = [PathBuf::from("stories"), packs_dir.to_path_buf()]
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    let paths = if paths.is_empty() {
        if defaults.is_empty() {
            anyhow::bail!(
                "nothing to validate: ./stories and {} do not exist (give a path)",
                packs_dir.display()
            );
        }
        &defaults[..]
    } else {
        paths
    };
    let targets = classify(paths)?;
    let (packs, mut diagnostics, _) = packs_for(&targets, packs_dir);
    let mut names: Vec<(String, PathBuf)> = Vec::new();
    let mut loaded_stories = Vec::new();
    for file in &targets.stories {
        let loaded = load_file_with(file, &packs);
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
    let actions = if targets.packs.is_empty() {
        0
    } else {
        packs.actions.len()
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "files": targets.stories.len(), "stories": stories,
                "packs": targets.packs.len(), "actions": actions,
                "errors": errors, "warnings": warnings, "diagnostics": diagnostics,
            }))?
        );
    } else {
        for d in &diagnostics {
            eprintln!("{d}");
        }
        let mut summary = format!("{} story file(s)", targets.stories.len());
        if !targets.packs.is_empty() {
            summary.push_str(&format!(
                ", {} pack(s) with {actions} action(s)",
                targets.packs.len()
            ));
        }
        let summary = format!("{summary} checked: {errors} error(s), {warnings} warning(s)");
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
