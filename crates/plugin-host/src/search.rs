//! The plugin search path: which directories are searched, in which order, and which
//! files in them are candidate libraries.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};

/// The environment variable with extra plugin directories.
pub const PLUGIN_PATH_ENV: &str = "SPARSESWAPS_PLUGIN_PATH";

/// File-name stem prefix of the bundled warm starts (after `DLL_PREFIX`).
pub const BUNDLED_STEM_PREFIX: &str = "sparseswaps_warmstart_";

/// File-name stem suffix of the bundled warm starts (before `DLL_SUFFIX`).
pub const BUNDLED_STEM_SUFFIX: &str = "_plugin";

/// Where a search directory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirSource {
    /// `<binary dir>/plugins/`.
    BesideBinary,
    /// Given by the caller (`--plugin-dir`).
    Given,
    /// From `SPARSESWAPS_PLUGIN_PATH`.
    EnvVar,
    /// A cargo build's output directory (only `*sparseswaps_warmstart_*_plugin*` files).
    Bundled,
}

impl fmt::Display for DirSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DirSource::BesideBinary => "beside the binary",
            DirSource::Given => "--plugin-dir",
            DirSource::EnvVar => PLUGIN_PATH_ENV,
            DirSource::Bundled => "bundled",
        })
    }
}

/// One directory of the search path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    /// The directory.
    pub path: PathBuf,
    /// Where it came from.
    pub source: DirSource,
}

/// The ordered list of directories searched for plugins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchPath {
    dirs: Vec<SearchDir>,
}

impl SearchPath {
    /// The standard search path (see the crate docs): `<binary dir>/plugins/`, then
    /// `plugin_dirs`, then `SPARSESWAPS_PLUGIN_PATH`, then the bundled build outputs.
    pub fn new(plugin_dirs: &[PathBuf]) -> Self {
        let exe_dir = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf));
        let env = std::env::var_os(PLUGIN_PATH_ENV);
        Self::from_parts(exe_dir.as_deref(), plugin_dirs, env.as_deref())
    }

    /// The standard search path for a given binary directory and variable value
    /// (what [`SearchPath::new`] computes; exposed for tests and embedders).
    pub fn from_parts(
        exe_dir: Option<&Path>,
        plugin_dirs: &[PathBuf],
        env: Option<&OsStr>,
    ) -> Self {
        let mut dirs = Vec::new();
        if let Some(e) = exe_dir {
            dirs.push(SearchDir {
                path: e.join("plugins"),
                source: DirSource::BesideBinary,
            });
        }
        dirs.extend(plugin_dirs.iter().map(|p| SearchDir {
            path: p.clone(),
            source: DirSource::Given,
        }));
        if let Some(v) = env {
            dirs.extend(
                std::env::split_paths(v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(|path| SearchDir {
                        path,
                        source: DirSource::EnvVar,
                    }),
            );
        }
        if let Some(e) = exe_dir {
            // deps/ first: cargo rebuilds it whenever the binary is built, while the copy
            // in the binary's directory is refreshed only when the plugin crate itself is
            // selected, so it can be stale.
            for path in [e.join("deps"), e.to_path_buf()] {
                dirs.push(SearchDir {
                    path,
                    source: DirSource::Bundled,
                });
            }
        }
        SearchPath { dirs }
    }

    /// Exactly these directories, nothing else (no binary directory, no variable).
    pub fn only(dirs: &[PathBuf]) -> Self {
        SearchPath {
            dirs: dirs
                .iter()
                .map(|p| SearchDir {
                    path: p.clone(),
                    source: DirSource::Given,
                })
                .collect(),
        }
    }

    /// The directories, in search order.
    pub fn dirs(&self) -> &[SearchDir] {
        &self.dirs
    }

    /// One line: `DIR (source), DIR (source), ...`.
    pub fn describe(&self) -> String {
        if self.dirs.is_empty() {
            return "(no directories)".into();
        }
        self.dirs
            .iter()
            .map(|d| format!("{} ({})", d.path.display(), d.source))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a file name looks like a shared library (`DLL_PREFIX*DLL_SUFFIX`), and for
/// bundled directories, like a bundled warm start.
pub(crate) fn is_candidate(file_name: &str, source: DirSource) -> bool {
    let (pre, suf) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let Some(stem) = file_name
        .strip_prefix(pre)
        .and_then(|s| s.strip_suffix(suf))
    else {
        return false;
    };
    !stem.is_empty()
        && (source != DirSource::Bundled
            || (stem.starts_with(BUNDLED_STEM_PREFIX) && stem.ends_with(BUNDLED_STEM_SUFFIX)))
}

/// Whether a warm-start spec names a library file rather than a plugin name: it has a
/// path separator or ends with the platform's library suffix.
pub fn is_library_path(spec: &str) -> bool {
    spec.contains('/')
        || spec.contains(std::path::MAIN_SEPARATOR)
        || spec.ends_with(std::env::consts::DLL_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_order_and_candidates() {
        let exe = Path::new("/opt/ss/bin");
        let env = std::env::join_paths(["/e1", "/e2"]).unwrap();
        let sp = SearchPath::from_parts(Some(exe), &[PathBuf::from("/given")], Some(&env));
        let got: Vec<(String, DirSource)> = sp
            .dirs()
            .iter()
            .map(|d| (d.path.display().to_string(), d.source))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/opt/ss/bin/plugins".into(), DirSource::BesideBinary),
                ("/given".into(), DirSource::Given),
                ("/e1".into(), DirSource::EnvVar),
                ("/e2".into(), DirSource::EnvVar),
                ("/opt/ss/bin/deps".into(), DirSource::Bundled),
                ("/opt/ss/bin".into(), DirSource::Bundled),
            ]
        );
        let (pre, suf) = (std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
        assert!(is_candidate(&format!("{pre}ria{suf}"), DirSource::Given));
        assert!(!is_candidate(&format!("{pre}ria{suf}"), DirSource::Bundled));
        assert!(is_candidate(
            &format!("{pre}sparseswaps_warmstart_wanda_plugin{suf}"),
            DirSource::Bundled
        ));
        assert!(!is_candidate(
            &format!("{pre}sparseswaps_warmstart_wanda{suf}"),
            DirSource::Bundled
        ));
        assert!(!is_candidate("notes.txt", DirSource::Given));
        assert!(
            is_library_path("./x.so") && is_library_path("libx.so") && !is_library_path("wanda")
        );
    }
}
