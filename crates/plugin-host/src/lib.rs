//! # sparseswaps-plugin-host
//!
//! Finds, loads and checks warm-start plugins: shared libraries that speak the ABI of
//! `sparseswaps-plugin-abi` (C header: `plugins/include/sparseswaps_plugin.h`).
//!
//! What it is for: turning a warm-start name (`--warm-start ria`) into a [`Plugin`] and a
//! plugin call into a [`Mask`](sparseswaps_core::Mask) the engine can trust. What it is
//! not for: computing masks itself, or reading weights and configs (the callers do that).
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
//!
//! ## Layout
//!
//! `search` (the search path and candidate files), `plugin` (loading a library and
//! checking its descriptor), `mask` (calling a plugin and checking its mask), `registry`
//! (discovery, listing, lookup by name), `error`. Every public item is re-exported here.

#![warn(missing_docs)]

mod error;
mod mask;
mod plugin;
mod registry;
mod search;

pub use error::{PluginError, Result};
pub use mask::{check_plugin_mask, MaskInput};
pub use plugin::Plugin;
pub use registry::{resolve, Registry, SkippedLibrary};
pub use search::{
    is_library_path, DirSource, SearchDir, SearchPath, BUNDLED_STEM_PREFIX, BUNDLED_STEM_SUFFIX,
    PLUGIN_PATH_ENV,
};
