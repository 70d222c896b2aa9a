//! The loaded stories, swapped atomically on reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard_story::{load_file, Diagnostic, Story};

/// Every loaded story, by name. Immutable: a reload builds a new one.
#[derive(Debug, Default)]
pub struct Catalog {
    stories: HashMap<Arc<str>, Arc<Story>>,
    /// The last good version of each file (kept when a new version is invalid).
    by_file: HashMap<PathBuf, Arc<Story>>,
}

/// What a reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Stories loaded or changed.
    pub loaded: Vec<String>,
    /// Stories removed (their file is gone).
    pub removed: Vec<String>,
    /// Problems; an invalid file keeps its previous version running.
    pub diagnostics: Vec<Diagnostic>,
}

impl Catalog {
    /// A story by name.
    pub fn story(&self, name: &str) -> Option<&Arc<Story>> {
        self.stories.get(name)
    }

    /// All stories, sorted by name.
    pub fn stories(&self) -> Vec<&Arc<Story>> {
        let mut v: Vec<_> = self.stories.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Loads the directory again. Unchanged files keep their built story; an invalid file
    /// keeps its previous version; a removed file removes its story.
    pub fn reload(&self, dir: &Path) -> (Catalog, ReloadReport) {
        let mut report = ReloadReport::default();
        let mut files = switchyard_story::load::story_files(dir);
        files.sort();
        let mut by_file: HashMap<PathBuf, Arc<Story>> = HashMap::new();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(prev) = self.by_file.get(&path) {
                if prev.source == text {
                    by_file.insert(path, Arc::clone(prev));
                    continue;
                }
            }
            let loaded = load_file(&path);
            report.diagnostics.extend(loaded.diagnostics);
            match loaded.story {
                Some(story) => {
                    report.loaded.push(story.name.to_string());
                    by_file.insert(path, Arc::new(story));
                }
                None => {
                    if let Some(prev) = self.by_file.get(&path) {
                        tracing::warn!(file = %path.display(), story = %prev.name, "story file is invalid; the previous version keeps running");
                        by_file.insert(path, Arc::clone(prev));
                    }
                }
            }
        }
        let mut stories: HashMap<Arc<str>, Arc<Story>> = HashMap::new();
        let mut paths: Vec<_> = by_file.keys().cloned().collect();
        paths.sort();
        for path in paths {
            let story = Arc::clone(&by_file[&path]);
            if let Some(other) = stories.get(&story.name) {
                report.diagnostics.push(
                    Diagnostic::error(
                        &path,
                        switchyard_story::yaml::Position { line: 1, column: 1 },
                        format!(
                            "story name `{}` is already used by {}",
                            story.name,
                            other.file.display()
                        ),
                    )
                    .with_hint("story names must be unique across the stories directory"),
                );
                by_file.remove(&path);
                continue;
            }
            stories.insert(Arc::clone(&story.name), story);
        }
        for name in self.stories.keys() {
            if !stories.contains_key(name) {
                report.removed.push(name.to_string());
            }
        }
        (Catalog { stories, by_file }, report)
    }
}
