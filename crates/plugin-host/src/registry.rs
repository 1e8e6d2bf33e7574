//! The registry: every plugin found on a search path, the ones shadowed or skipped, and
//! lookup by name.

use crate::error::{PluginError, Result};
use crate::plugin::Plugin;
use crate::search::{is_candidate, is_library_path, DirSource, SearchPath};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// A library that was found but could not be used.
#[derive(Debug, Clone)]
pub struct SkippedLibrary {
    /// The library.
    pub path: PathBuf,
    /// Why it was skipped.
    pub error: PluginError,
}

/// The plugins found on a search path.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    search: SearchPath,
    plugins: Vec<Plugin>,
    shadowed: Vec<Plugin>,
    skipped: Vec<SkippedLibrary>,
}

impl Registry {
    /// Loads every candidate library of every directory of `search` (missing
    /// directories are skipped silently; unusable libraries are recorded in
    /// [`Registry::skipped`]).
    pub fn discover(search: &SearchPath) -> Registry {
        let mut reg = Registry {
            search: search.clone(),
            ..Registry::default()
        };
        let mut seen_paths = Vec::<PathBuf>::new();
        let mut bundled_names = Vec::<std::ffi::OsString>::new();
        for dir in search.dirs() {
            let Ok(entries) = std::fs::read_dir(&dir.path) else {
                continue;
            };
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(OsStr::to_str)
                            .is_some_and(|n| is_candidate(n, dir.source))
                })
                .collect();
            files.sort();
            for path in files {
                let canon = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
                if seen_paths.contains(&canon) {
                    continue;
                }
                seen_paths.push(canon);
                if dir.source == DirSource::Bundled {
                    // The same cdylib is both in <bin> and <bin>/deps: load one copy.
                    let name = path.file_name().unwrap_or_default().to_os_string();
                    if bundled_names.contains(&name) {
                        continue;
                    }
                    bundled_names.push(name);
                }
                match Plugin::load(&path) {
                    Ok(p) if reg.plugins.iter().any(|q| q.name == p.name) => reg.shadowed.push(p),
                    Ok(p) => reg.plugins.push(p),
                    Err(error) => reg.skipped.push(SkippedLibrary { path, error }),
                }
            }
        }
        reg
    }

    /// The usable plugins, in search order (first of each name).
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// Plugins hidden by an earlier one of the same name.
    pub fn shadowed(&self) -> &[Plugin] {
        &self.shadowed
    }

    /// Libraries that could not be used, with why.
    pub fn skipped(&self) -> &[SkippedLibrary] {
        &self.skipped
    }

    /// The search path this registry was built from.
    pub fn search_path(&self) -> &SearchPath {
        &self.search
    }

    /// The plugin named `name`; the error lists the directories searched, the plugins
    /// found and the libraries skipped.
    pub fn get(&self, name: &str) -> Result<&Plugin> {
        self.plugins
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PluginError::NotFound {
                name: name.into(),
                searched: self.search.describe(),
                found: if self.plugins.is_empty() {
                    "none".into()
                } else {
                    self.plugins
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                skipped: if self.skipped.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; libraries skipped: {}",
                        self.skipped
                            .iter()
                            .map(|s| s.error.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                },
            })
    }
}

/// Resolves a warm-start spec: a library path (see [`is_library_path`]) is loaded
/// directly; a name is looked up on `search`.
pub fn resolve(spec: &str, search: &SearchPath) -> Result<Plugin> {
    if is_library_path(spec) {
        Plugin::load(Path::new(spec))
    } else {
        Registry::discover(search).get(spec).cloned()
    }
}
