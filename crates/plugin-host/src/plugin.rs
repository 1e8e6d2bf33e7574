//! Loading a library and checking its descriptor against the ABI: what turns a file into
//! a [`Plugin`].

use crate::error::{PluginError, Result};
use sparseswaps_core::Pattern;
use sparseswaps_plugin_abi as abi;
use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};

/// A loaded, checked plugin. Cheap to clone; its library stays loaded for the life of
/// the process.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub(crate) name: String,
    version: String,
    abi_version: u32,
    patterns: u32,
    pub(crate) needs: u32,
    pub(crate) path: PathBuf,
    pub(crate) compute: abi::ComputeFn,
    pub(crate) last_error: abi::LastErrorFn,
}

/// Supported-pattern bits in words (`"unstructured, N:M"`, `"none"`).
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
pub(crate) unsafe fn c_str(p: *const c_char) -> Option<String> {
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
        let lib = open(path)?;
        let entry = entry_symbol(lib, path)?;
        // SAFETY: the entry takes no arguments and returns a pointer (ABI contract).
        let desc = unsafe { entry() };
        let d = check_descriptor(desc, path)?;
        let bad = |reason: &str| PluginError::BadDescriptor {
            path: path.into(),
            reason: reason.into(),
        };
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
            needs: d.needs,
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

    /// The inputs it declares it cannot work without ([`abi::NEEDS_GRAM_DIAG`],
    /// [`abi::NEEDS_FULL_GRAM`]); 0 when it declares none.
    pub fn needs_bits(&self) -> u32 {
        self.needs
    }

    /// [`Plugin::needs_bits`] in words (`"full Gram"`, `"Gram diagonal"`, or `"nothing
    /// declared"`).
    pub fn needs_names(&self) -> String {
        let mut out = Vec::new();
        if self.needs & abi::NEEDS_FULL_GRAM != 0 {
            out.push("full Gram");
        }
        if self.needs & abi::NEEDS_GRAM_DIAG != 0 {
            out.push("Gram diagonal");
        }
        if out.is_empty() {
            "nothing declared".into()
        } else {
            out.join(", ")
        }
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
}

/// Loads the library at `path` for the life of the process.
fn open(path: &Path) -> Result<&'static libloading::Library> {
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
    Ok(Box::leak(Box::new(lib)))
}

/// The library's entry symbol of this ABI major version; when it is missing, the error
/// says whether the library exports the entry of another major version instead.
fn entry_symbol(lib: &'static libloading::Library, path: &Path) -> Result<abi::EntryFn> {
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
    Ok(*entry)
}

/// Checks the descriptor the entry symbol returned (non-null, this ABI version, large
/// enough) and copies it out.
fn check_descriptor(desc: *const abi::Descriptor, path: &Path) -> Result<abi::Descriptor> {
    if desc.is_null() {
        return Err(PluginError::BadDescriptor {
            path: path.into(),
            reason: "the entry symbol returned null".into(),
        });
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
    Ok(unsafe { std::ptr::read_unaligned(desc) })
}
