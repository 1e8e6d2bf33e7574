//! Support code of [`export_plugin!`](crate::export_plugin); not part of the API.

use crate::request::{missing_input, PluginError, Request};
use crate::status;
use crate::types::{ComputeFn, Descriptor, LastErrorFn, MaskRequest, ABI_VERSION};
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores the last error of this thread (interior NULs are replaced).
pub fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's last error (valid until the next call on this thread).
pub fn last_error_ptr() -> *const c_char {
    catch_unwind(|| LAST_ERROR.with(|e| e.borrow().as_ptr())).unwrap_or(std::ptr::null())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// The body of an exported `compute`: checks the request, calls `f`, catches panics,
/// records errors.
///
/// # Safety
///
/// As [`Request::from_raw`]; `out` is null or valid for `rows * cols` bytes.
pub unsafe fn compute(
    supported: u32,
    needs: u32,
    req: *const MaskRequest,
    out: *mut u8,
    f: fn(&Request<'_>, &mut [u8]) -> Result<(), PluginError>,
) -> i32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let r = Request::from_raw(req)?;
        if r.pattern.support_bit() & supported == 0 {
            return Err(PluginError::new(
                status::UNSUPPORTED_PATTERN,
                format!("pattern {:?} is not supported by this plugin", r.pattern),
            ));
        }
        if let Some(missing) = missing_input(needs, r.gram_diag.is_some(), r.gram.is_some()) {
            return Err(PluginError::new(
                status::MISSING_INPUT,
                format!("this plugin needs {missing}, which the host did not send"),
            ));
        }
        if out.is_null() {
            return Err(PluginError::new(
                status::INVALID_REQUEST,
                "output mask pointer is null",
            ));
        }
        let out = std::slice::from_raw_parts_mut(out, r.rows * r.cols);
        f(&r, out)
    }));
    match result {
        Ok(Ok(())) => status::OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.code
        }
        Err(p) => {
            set_last_error(&format!("plugin panicked: {}", panic_message(&*p)));
            status::PANIC
        }
    }
}

/// Builds a descriptor (once per library; strings are leaked on purpose: they live as
/// long as the library, which is never unloaded).
pub fn descriptor(
    name: &str,
    version: &str,
    patterns: u32,
    needs: u32,
    compute: ComputeFn,
    last_error: LastErrorFn,
) -> Descriptor {
    let leak = |s: &str| -> *const c_char {
        CString::new(s)
            .expect("plugin name and version have no NUL")
            .into_raw()
    };
    Descriptor {
        abi_version: ABI_VERSION,
        struct_size: std::mem::size_of::<Descriptor>() as u32,
        name: leak(name),
        version: leak(version),
        patterns,
        needs,
        compute: Some(compute),
        last_error: Some(last_error),
    }
}

/// The body of the exported entry symbol: builds the descriptor once, catches panics.
pub fn entry(
    cell: &'static std::sync::OnceLock<Descriptor>,
    make: fn() -> Descriptor,
) -> *const Descriptor {
    catch_unwind(|| cell.get_or_init(make) as *const Descriptor).unwrap_or_else(|p| {
        set_last_error(&format!("plugin panicked: {}", panic_message(&*p)));
        std::ptr::null()
    })
}
