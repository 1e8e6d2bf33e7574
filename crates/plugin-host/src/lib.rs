//! # sparseswaps-plugin-host
//!
//! Finds, loads and checks warm-start plugins: shared libraries that speak the ABI of
//! `sparseswaps-plugin-abi` (C header: `plugins/include/sparseswaps_plugin.h`).
//!
//! What it is for: turning a warm-start name (`--warm-start ria`) into a [`Plugin`] and a
//! plugin call into a [`Mask`] the engine can trust. What it is not for: computing masks
//! itself, or reading weights and configs (the callers do that).
//!
//! ## Discovery
//!
//! [`SearchPath::new`] lists, in this order:
//!
//! 1. `<binary dir>/plugins/` — where a packaged install puts its plugins;
//! 2. the directories given by the caller (`--plugin-dir DIR`, repeatable);
//! 3. the directories of the `SPARSESWAPS_PLUGIN_PATH` variable (`:`-separated on Unix,
//!    `;` on Windows);
//! 4. the *bundled* plugins of a cargo build: files named
//!    `<DLL_PREFIX>sparseswaps_warmstart_*_plugin<DLL_SUFFIX>`
//!    (`libsparseswaps_warmstart_wanda_plugin.so` on Linux) in `<binary dir>/deps/` and `<binary dir>`, where `cargo build` leaves the
//!    cdylibs of the workspace's warm starts (`deps/` first: it is rebuilt with the
//!    binary, the other copy only when the plugin crate itself is built). So a `cargo build --release`-ed binary finds
//!    `magnitude` and `wanda` without flags.
//!
//! **Naming rule:** in directories 1–3 every file named `<DLL_PREFIX>*<DLL_SUFFIX>` is
//! loaded, and a plugin is known by the *name in its descriptor*, not by its file name.
//! When two libraries declare the same name, the first in search order wins and the other
//! is listed as shadowed. Files that fail to load are skipped and reported (they do not
//! hide the others), and the error of a failed lookup lists them with the directories
//! searched.
//!
//! ## Safety net
//!
//! Every library is checked before use (entry symbol, ABI version, descriptor size,
//! non-null functions, UTF-8 name), every mask it returns is checked with
//! [`sparseswaps_core::validate_mask`] (0/1 values, `k` per row, `N` per group), the host
//! allocates every buffer (pre-filled with `0xFF`, so an entry the plugin did not write is
//! caught), and libraries are never unloaded. Loading a library runs its initialisers:
//! only point the host at directories you trust.

#![warn(missing_docs)]

use sparseswaps_core::{validate_mask, CoreError, Mask, Pattern};
use sparseswaps_plugin_abi as abi;
use std::ffi::{c_char, CStr, CString, OsStr};
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The environment variable with extra plugin directories.
pub const PLUGIN_PATH_ENV: &str = "SPARSESWAPS_PLUGIN_PATH";

/// File-name stem prefix of the bundled warm starts (after `DLL_PREFIX`).
pub const BUNDLED_STEM_PREFIX: &str = "sparseswaps_warmstart_";

/// File-name stem suffix of the bundled warm starts (before `DLL_SUFFIX`).
pub const BUNDLED_STEM_SUFFIX: &str = "_plugin";

/// Errors of finding, loading and calling plugins. Each names the library (or lists the
/// places searched).
#[derive(Debug, Error, Clone)]
pub enum PluginError {
    /// An explicit library path that does not exist.
    #[error("{path}: plugin library not found")]
    FileNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// No library in the search path declares this name.
    #[error("no warm-start plugin named '{name}'; searched (in order): {searched}; plugins found: {found}{skipped}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// The directories searched, in order, with where each came from.
        searched: String,
        /// The names of the plugins that were found.
        found: String,
        /// Libraries that failed to load, with why (empty when none).
        skipped: String,
    },
    /// The file exists but the dynamic loader refused it.
    #[error("{path}: not a loadable shared library ({reason})")]
    NotALibrary {
        /// The library.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library lacks the entry symbol of this ABI major version.
    #[error("{path}: no entry symbol `{symbol}`{hint}")]
    MissingEntry {
        /// The library.
        path: PathBuf,
        /// The symbol looked up.
        symbol: &'static str,
        /// What was found instead, if anything.
        hint: String,
    },
    /// The descriptor declares another ABI version.
    #[error("{path}: plugin '{name}' was built for plugin ABI version {found}, this host speaks version {expected}")]
    AbiVersion {
        /// The library.
        path: PathBuf,
        /// The name it declares (`?` when unreadable).
        name: String,
        /// The version it declares.
        found: u32,
        /// The host's version.
        expected: u32,
    },
    /// The descriptor is smaller than the fields the host reads.
    #[error("{path}: descriptor struct_size {found} is smaller than the {expected} bytes of plugin ABI v1 (built against an older or broken header?)")]
    StructSize {
        /// The library.
        path: PathBuf,
        /// The size it declares.
        found: u32,
        /// The size the host needs.
        expected: u32,
    },
    /// A descriptor that is unusable for another reason (null entry result, null
    /// function, name not UTF-8).
    #[error("{path}: invalid plugin descriptor: {reason}")]
    BadDescriptor {
        /// The library.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The plugin does not declare the requested pattern kind.
    #[error(
        "plugin '{name}' ({path}) does not support {requested} patterns (it supports: {supported})"
    )]
    UnsupportedPattern {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// The pattern asked for.
        requested: String,
        /// What it supports.
        supported: String,
    },
    /// The inputs do not fit together (checked before the plugin is called).
    #[error("plugin '{name}' ({path}): {reason}")]
    BadInput {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The plugin returned an error status.
    #[error("plugin '{name}' ({path}) failed with status {code} ({status}): {message}")]
    Failed {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// The status code.
        code: i32,
        /// The status code's name.
        status: &'static str,
        /// The plugin's `last_error` message.
        message: String,
    },
    /// The plugin returned a mask that breaks the pattern.
    #[error("plugin '{name}' ({path}) returned an invalid mask: {detail}")]
    InvalidMask {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// What is wrong (names the row, and the group for N:M).
        detail: String,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, PluginError>;

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
fn is_candidate(file_name: &str, source: DirSource) -> bool {
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

/// The inputs of a mask request. Gram inputs are optional; send what you have (plugins
/// that need them report [`abi::status::MISSING_INPUT`] otherwise).
#[derive(Debug, Clone, Copy)]
pub struct MaskInput<'a> {
    /// Weights, row-major `rows x cols`.
    pub weights: &'a [f32],
    /// Rows (`d_out`).
    pub rows: usize,
    /// Columns (`d_in`).
    pub cols: usize,
    /// Gram diagonal (`cols` values).
    pub gram_diag: Option<&'a [f32]>,
    /// Full Gram matrix (`cols x cols`, row-major).
    pub gram: Option<&'a [f32]>,
    /// Options string passed to the plugin as is.
    pub options: Option<&'a str>,
}

/// A loaded, checked plugin. Cheap to clone; its library stays loaded for the life of
/// the process.
#[derive(Debug, Clone)]
pub struct Plugin {
    name: String,
    version: String,
    abi_version: u32,
    patterns: u32,
    path: PathBuf,
    compute: abi::ComputeFn,
    last_error: abi::LastErrorFn,
}

fn pattern_names(bits: u32) -> String {
    let mut v = Vec::new();
    if bits & abi::SUPPORTS_UNSTRUCTURED != 0 {
        v.push("unstructured");
    }
    if bits & abi::SUPPORTS_NM != 0 {
        v.push("N:M");
    }
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Reads a NUL-terminated UTF-8 string from a plugin.
///
/// # Safety
///
/// `p` is null or points at a NUL-terminated string.
unsafe fn c_str(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        CStr::from_ptr(p).to_str().ok().map(str::to_string)
    }
}

impl Plugin {
    /// Loads and checks the library at `path` (which is then never unloaded).
    pub fn load(path: &Path) -> Result<Plugin> {
        if !path.exists() {
            return Err(PluginError::FileNotFound { path: path.into() });
        }
        let bad = |reason: &str| PluginError::BadDescriptor {
            path: path.into(),
            reason: reason.into(),
        };
        // SAFETY: loading a library runs its initialisers; the caller chose the path
        // (see the crate docs).
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
            // libloading keeps the loader's own message in the source.
            let reason = match std::error::Error::source(&e) {
                Some(src) => format!("{e}: {src}"),
                None => e.to_string(),
            };
            PluginError::NotALibrary {
                path: path.into(),
                reason,
            }
        })?;
        // Never unloaded: descriptors, strings and functions stay valid for the process.
        let lib: &'static libloading::Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol's type is fixed by the ABI.
        let entry = unsafe { lib.get::<abi::EntryFn>(abi::ENTRY_SYMBOL_NUL) }.map_err(|_| {
            let other: Vec<String> = (0..=9u32)
                .filter(|&v| v != abi::ABI_VERSION)
                .map(|v| format!("sparseswaps_plugin_v{v}"))
                .filter(|s| {
                    let sym = format!("{s}\0");
                    // SAFETY: only checks presence; the symbol is not called.
                    unsafe { lib.get::<*const ()>(sym.as_bytes()) }.is_ok()
                })
                .collect();
            PluginError::MissingEntry {
                path: path.into(),
                symbol: abi::ENTRY_SYMBOL,
                hint: if other.is_empty() {
                    " (not a sparseswaps plugin)".into()
                } else {
                    format!(
                        "; it exports `{}`: built for another ABI major version than this host's v{}",
                        other.join("`, `"),
                        abi::ABI_VERSION
                    )
                },
            }
        })?;
        // SAFETY: the entry takes no arguments and returns a pointer (ABI contract).
        let desc = unsafe { entry() };
        if desc.is_null() {
            return Err(bad("the entry symbol returned null"));
        }
        // Read the two leading u32s first: they exist in every version.
        // SAFETY: every descriptor starts with abi_version and struct_size.
        let (version, size) = unsafe {
            let p = desc as *const u32;
            (p.read_unaligned(), p.add(1).read_unaligned())
        };
        let need = std::mem::size_of::<abi::Descriptor>() as u32;
        if version != abi::ABI_VERSION {
            // The name field is only trusted when the struct is big enough.
            let name = if size >= need {
                // SAFETY: struct_size says the name field exists.
                unsafe { c_str((*desc).name) }.unwrap_or_else(|| "?".into())
            } else {
                "?".into()
            };
            return Err(PluginError::AbiVersion {
                path: path.into(),
                name,
                found: version,
                expected: abi::ABI_VERSION,
            });
        }
        if size < need {
            return Err(PluginError::StructSize {
                path: path.into(),
                found: size,
                expected: need,
            });
        }
        // SAFETY: checked non-null and at least as large as our Descriptor.
        let d: abi::Descriptor = unsafe { std::ptr::read_unaligned(desc) };
        // SAFETY: the ABI says name and version are NUL-terminated strings.
        let name = unsafe { c_str(d.name) }.ok_or_else(|| bad("name is null or not UTF-8"))?;
        if name.is_empty() || name.contains(['/', '\\', ':']) {
            return Err(bad(&format!(
                "name '{name}' is empty or has a '/', '\\' or ':'"
            )));
        }
        // SAFETY: as above.
        let version = unsafe { c_str(d.version) }.unwrap_or_else(|| "?".into());
        let compute = d.compute.ok_or_else(|| bad("compute is null"))?;
        let last_error = d.last_error.ok_or_else(|| bad("last_error is null"))?;
        Ok(Plugin {
            name,
            version,
            abi_version: d.abi_version,
            patterns: d.patterns,
            path: path.into(),
            compute,
            last_error,
        })
    }

    /// The name the plugin declares (what `--warm-start NAME` resolves).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin's own version string.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The ABI version of its descriptor.
    pub fn abi_version(&self) -> u32 {
        self.abi_version
    }

    /// Its supported-pattern bits ([`abi::SUPPORTS_UNSTRUCTURED`], [`abi::SUPPORTS_NM`]).
    pub fn pattern_bits(&self) -> u32 {
        self.patterns
    }

    /// Its supported patterns in words (`"unstructured, N:M"`).
    pub fn pattern_names(&self) -> String {
        pattern_names(self.patterns)
    }

    /// The library it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it declares support for the kind of `pattern`.
    pub fn supports(&self, pattern: &Pattern) -> bool {
        let bit = match pattern {
            Pattern::Unstructured { .. } => abi::SUPPORTS_UNSTRUCTURED,
            Pattern::NM { .. } => abi::SUPPORTS_NM,
        };
        self.patterns & bit != 0
    }

    /// Asks the plugin for a mask of `input` under `pattern`, and checks it.
    ///
    /// The output buffer is allocated here (filled with `0xFF`, so unwritten entries are
    /// caught); the mask is returned only if it passes
    /// [`sparseswaps_core::validate_mask`].
    pub fn compute_mask(&self, input: &MaskInput<'_>, pattern: &Pattern) -> Result<Mask> {
        let bad_input = |reason: String| PluginError::BadInput {
            name: self.name.clone(),
            path: self.path.clone(),
            reason,
        };
        let (rows, cols) = (input.rows, input.cols);
        // Checked: rows and cols come from the caller's files, and the output buffer is
        // sized by their product.
        let Some(size) = rows.checked_mul(cols) else {
            return Err(bad_input(format!("{rows} x {cols} values overflow")));
        };
        if input.weights.len() != size {
            return Err(bad_input(format!(
                "weights have {} values, expected {rows} x {cols}",
                input.weights.len()
            )));
        }
        if let Some(d) = input.gram_diag {
            if d.len() != cols {
                return Err(bad_input(format!(
                    "Gram diagonal has {} values, expected {cols}",
                    d.len()
                )));
            }
        }
        if let Some(g) = input.gram {
            if g.len() != cols * cols {
                return Err(bad_input(format!(
                    "Gram matrix has {} values, expected {cols} x {cols}",
                    g.len()
                )));
            }
        }
        pattern
            .check_width(cols)
            .map_err(|e| bad_input(e.to_string()))?;
        if !self.supports(pattern) {
            return Err(PluginError::UnsupportedPattern {
                name: self.name.clone(),
                path: self.path.clone(),
                requested: match pattern {
                    Pattern::Unstructured { .. } => "unstructured".into(),
                    Pattern::NM { .. } => "N:M".into(),
                },
                supported: self.pattern_names(),
            });
        }
        let options = input
            .options
            .map(CString::new)
            .transpose()
            .map_err(|_| bad_input("options contain a NUL byte".into()))?;
        let (kind, n, m) = match *pattern {
            Pattern::Unstructured { .. } => (abi::PATTERN_UNSTRUCTURED, 0, 0),
            Pattern::NM { n, m } => (abi::PATTERN_NM, n as u64, m as u64),
        };
        let request = abi::MaskRequest {
            struct_size: std::mem::size_of::<abi::MaskRequest>() as u64,
            rows: rows as u64,
            cols: cols as u64,
            weights: input.weights.as_ptr(),
            gram_diag: input.gram_diag.map_or(std::ptr::null(), <[f32]>::as_ptr),
            gram: input.gram.map_or(std::ptr::null(), <[f32]>::as_ptr),
            pattern: abi::PatternSpec {
                kind,
                reserved: 0,
                k: pattern.kept_per_row(cols) as u64,
                n,
                m,
            },
            options: options.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
        };
        let mut out = vec![0xFFu8; size];
        // SAFETY: every pointer in the request is valid for the lengths it states for the
        // duration of the call, and `out` holds rows * cols bytes (ABI contract).
        let code = unsafe { (self.compute)(&request, out.as_mut_ptr()) };
        if code != abi::status::OK {
            // SAFETY: same thread, right after the failing call (ABI contract).
            let message = unsafe { c_str((self.last_error)()) }
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "(the plugin gave no message)".into());
            return Err(PluginError::Failed {
                name: self.name.clone(),
                path: self.path.clone(),
                code,
                status: abi::status::name(code),
                message,
            });
        }
        check_plugin_mask(&self.name, &self.path, out, rows, cols, pattern)
    }
}

/// Checks a mask buffer a plugin wrote for a `rows x cols` layer against `pattern` (0/1
/// values, `k` kept per row, `N` per group of `M`, the right length) and turns it into a
/// [`Mask`]. The error names the plugin and library (`name`, `path`) and the first row
/// (and group) at fault.
///
/// [`Plugin::compute_mask`] calls this on every buffer it gets back; it is public so the
/// check can be exercised (tests, fuzzing) without a library that misbehaves on purpose.
pub fn check_plugin_mask(
    name: &str,
    path: &Path,
    out: Vec<u8>,
    rows: usize,
    cols: usize,
    pattern: &Pattern,
) -> Result<Mask> {
    let invalid = |detail: String| PluginError::InvalidMask {
        name: name.into(),
        path: path.into(),
        detail,
    };
    validate_mask(&out, rows, cols, pattern).map_err(|e| {
        invalid(match e {
            CoreError::InvalidMask(s) => s,
            other => other.to_string(),
        })
    })?;
    Mask::new(rows, cols, out).map_err(|e| invalid(e.to_string()))
}

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

/// Whether a warm-start spec names a library file rather than a plugin name: it has a
/// path separator or ends with the platform's library suffix.
pub fn is_library_path(spec: &str) -> bool {
    spec.contains('/')
        || spec.contains(std::path::MAIN_SEPARATOR)
        || spec.ends_with(std::env::consts::DLL_SUFFIX)
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
