//! The loaded stories, swapped atomically on reload.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchyard_story::{load_file_with, Diagnostic, Packs, Story};

/// Every loaded story, by name, and the packs. Immutable: a reload builds a new one.
#[derive(Debug, Default)]
pub struct Catalog {
    stories: HashMap<Arc<str>, Arc<Story>>,
    /// The last good version of each file (kept when a new version is invalid).
    by_file: HashMap<PathBuf, Arc<Story>>,
    /// The packs and their actions.
    packs: Arc<Packs>,
    /// The internal story of each action (`PACK.ACTION`), for operators' `action run`.
    actions: HashMap<Arc<str>, Arc<Story>>,
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
    /// Packs loaded or changed (all of them when any pack file changed).
    pub packs_loaded: Vec<String>,
}

impl Catalog {
    /// A story by name; `PACK.ACTION` names the internal story of an action run.
    pub fn story(&self, name: &str) -> Option<&Arc<Story>> {
        self.stories.get(name).or_else(|| self.actions.get(name))
    }

    /// The loaded packs and actions.
    pub fn packs(&self) -> &Arc<Packs> {
        &self.packs
    }

    /// The internal story that runs action `PACK.ACTION` for an operator.
    pub fn action_story(&self, reference: &str) -> Option<&Arc<Story>> {
        self.actions.get(reference)
    }

    /// All stories, sorted by name.
    pub fn stories(&self) -> Vec<&Arc<Story>> {
        let mut v: Vec<_> = self.stories.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Loads the stories directory again (without packs).
    pub fn reload(&self, dir: &Path) -> (Catalog, ReloadReport) {
        self.reload_with(dir, None)
    }

    /// Loads the packs and the stories directory again. Unchanged files keep their built
    /// story (unless the packs changed: then every story is built again, so `action` agents
    /// run the new actions); an invalid file keeps its previous version; a removed file
    /// removes its story.
    pub fn reload_with(&self, dir: &Path, packs_dir: Option<&Path>) -> (Catalog, ReloadReport) {
        let mut report = ReloadReport::default();
        let (packs, actions) = self.reload_packs(packs_dir, &mut report);
        let packs_changed = !Arc::ptr_eq(&packs, &self.packs);
        let mut files = switchyard_story::load::story_files(dir);
        files.sort();
        let mut by_file: HashMap<PathBuf, Arc<Story>> = HashMap::new();
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(prev) = self.by_file.get(&path).filter(|_| !packs_changed) {
                if prev.source == text {
                    by_file.insert(path, Arc::clone(prev));
                    continue;
                }
            }
            let loaded = load_file_with(&path, &packs);
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
        (
            Catalog {
                stories,
                by_file,
                packs,
                actions,
            },
            report,
        )
    }

    /// The packs (the current ones when no file changed) and their actions' stories.
    #[allow(clippy::type_complexity)]
    fn reload_packs(
        &self,
        packs_dir: Option<&Path>,
        report: &mut ReloadReport,
    ) -> (Arc<Packs>, HashMap<Arc<str>, Arc<Story>>) {
        let (packs, diagnostics) = match packs_dir {
            Some(d) if d.is_dir() => switchyard_story::load_packs(d),
            _ => (Packs::empty(), Vec::new()),
        };
        report.diagnostics.extend(diagnostics);
        if packs.fingerprint == self.packs.fingerprint
            && packs.actions.len() == self.packs.actions.len()
        {
            return (Arc::clone(&self.packs), self.actions.clone());
        }
        let mut actions = HashMap::new();
        for action in packs.actions.iter() {
            if let Some(story) = switchyard_story::pack::action_story(action, &packs.actions) {
                actions.insert(Arc::clone(&story.name), Arc::new(story));
            }
        }
        report.packs_loaded = packs.packs.iter().map(|p| p.name.clone()).collect();
        (Arc::new(packs), actions)
    }
}
