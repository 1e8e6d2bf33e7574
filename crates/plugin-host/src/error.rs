//! The crate's error type: every failure names the library (or lists the places searched).

use std::path::PathBuf;
use thiserror::Error;

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
    /// The plugin declares an input ([`sparseswaps_plugin_abi::NEEDS_FULL_GRAM`],
    /// [`sparseswaps_plugin_abi::NEEDS_GRAM_DIAG`])
    /// that the caller did not provide (checked before the plugin is called).
    #[error("plugin '{name}' ({path}) needs {input}, which this caller does not provide")]
    MissingInput {
        /// The plugin's name.
        name: String,
        /// The library.
        path: PathBuf,
        /// The input, in words.
        input: String,
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
