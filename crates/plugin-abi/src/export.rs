//! [`export_plugin!`](crate::export_plugin): a Rust warm start as a plugin library.

/// Exports a Rust warm start as a sparseswaps plugin.
///
/// Generates the entry symbol `sparseswaps_plugin_v1`, the descriptor, and the `compute`
/// and `last_error` functions; every exported function catches panics (a panic becomes
/// [`status::PANIC`](crate::status::PANIC) with its message), errors are stored per
/// thread for `last_error`, and requests are checked (null pointers, `struct_size`,
/// pattern support, and the inputs named by the optional `needs:` bits,
/// [`NEEDS_GRAM_DIAG`](crate::NEEDS_GRAM_DIAG) and [`NEEDS_FULL_GRAM`](crate::NEEDS_FULL_GRAM))
/// before `compute` sees them. Put it in a crate of its own with `crate-type = ["cdylib"]` (add
/// `"rlib"` only so that other crates can depend on it to get the cdylib built; never
/// link it).
///
/// ```
/// use sparseswaps_plugin_abi::{export_plugin, Pattern, PluginError, Request, SUPPORTS_UNSTRUCTURED};
///
/// /// Keeps the first k weights of every row.
/// fn first_k(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
///     let Pattern::Unstructured { k } = req.pattern else { unreachable!() };
///     for row in out.chunks_mut(req.cols) {
///         for (j, v) in row.iter_mut().enumerate() {
///             *v = (j < k) as u8;
///         }
///     }
///     Ok(())
/// }
///
/// export_plugin! {
///     name: "first-k",
///     version: env!("CARGO_PKG_VERSION"),
///     patterns: SUPPORTS_UNSTRUCTURED,
///     compute: first_k,
/// }
/// # fn main() {}
/// ```
///
/// Only one plugin may be exported per library, and two crates that each export one
/// must not be linked into the same Rust binary without LTO (their entry symbols share
/// a name; link them as shared libraries instead).
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        patterns: $patterns:expr,
        compute: $compute:path $(,)?
    ) => {
        $crate::export_plugin! {
            name: $name,
            version: $version,
            patterns: $patterns,
            needs: 0,
            compute: $compute,
        }
    };
    (
        name: $name:expr,
        version: $version:expr,
        patterns: $patterns:expr,
        needs: $needs:expr,
        compute: $compute:path $(,)?
    ) => {
        const _: () = {
            static DESCRIPTOR: ::std::sync::OnceLock<$crate::Descriptor> =
                ::std::sync::OnceLock::new();

            unsafe extern "C" fn __sparseswaps_compute(
                req: *const $crate::MaskRequest,
                out: *mut u8,
            ) -> i32 {
                $crate::__private::compute($patterns, $needs, req, out, $compute)
            }

            unsafe extern "C" fn __sparseswaps_last_error() -> *const ::std::ffi::c_char {
                $crate::__private::last_error_ptr()
            }

            fn __sparseswaps_make() -> $crate::Descriptor {
                $crate::__private::descriptor(
                    $name,
                    $version,
                    $patterns,
                    $needs,
                    __sparseswaps_compute,
                    __sparseswaps_last_error,
                )
            }

            /// The plugin's entry symbol (ABI v1).
            #[no_mangle]
            pub extern "C" fn sparseswaps_plugin_v1() -> *const $crate::Descriptor {
                $crate::__private::entry(&DESCRIPTOR, __sparseswaps_make)
            }
        };
    };
}

#[cfg(test)]
mod tests {
    use crate::{
        status, Descriptor, MaskRequest, Pattern, PatternSpec, PluginError, Request, ABI_VERSION,
        PATTERN_NM, PATTERN_UNSTRUCTURED, SUPPORTS_UNSTRUCTURED,
    };
    use std::ffi::{c_char, CStr};

    fn keep_first(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
        if req.options == Some("panic") {
            panic!("asked to panic");
        }
        if req.options == Some("fail") {
            return Err(PluginError::failed("asked to fail"));
        }
        let Pattern::Unstructured { k } = req.pattern else {
            unreachable!()
        };
        for row in out.chunks_mut(req.cols) {
            for (j, v) in row.iter_mut().enumerate() {
                *v = (j < k) as u8;
            }
        }
        Ok(())
    }

    export_plugin! {
        name: "keep-first",
        version: "1.2.3",
        patterns: SUPPORTS_UNSTRUCTURED,
        compute: keep_first,
    }

    extern "C" {
        // The symbol the macro exported above (not nameable in Rust: it lives in an
        // anonymous const, as in every plugin).
        fn sparseswaps_plugin_v1() -> *const Descriptor;
    }

    fn request(w: &[f32], rows: u64, cols: u64, k: u64) -> MaskRequest {
        MaskRequest {
            struct_size: std::mem::size_of::<MaskRequest>() as u64,
            rows,
            cols,
            weights: w.as_ptr(),
            gram_diag: std::ptr::null(),
            gram: std::ptr::null(),
            pattern: PatternSpec {
                kind: PATTERN_UNSTRUCTURED,
                reserved: 0,
                k,
                n: 0,
                m: 0,
            },
            options: std::ptr::null(),
        }
    }

    #[test]
    fn macro_exports_a_working_plugin() {
        let d = unsafe { &*sparseswaps_plugin_v1() };
        assert_eq!(d.abi_version, ABI_VERSION);
        assert_eq!(d.struct_size as usize, std::mem::size_of::<Descriptor>());
        assert_eq!(
            unsafe { CStr::from_ptr(d.name) }.to_str().unwrap(),
            "keep-first"
        );
        assert_eq!(
            unsafe { CStr::from_ptr(d.version) }.to_str().unwrap(),
            "1.2.3"
        );
        let (compute, last_error) = (d.compute.unwrap(), d.last_error.unwrap());
        let w = [1.0f32; 6];
        let mut out = [9u8; 6];
        let mut req = request(&w, 2, 3, 2);
        assert_eq!(unsafe { compute(&req, out.as_mut_ptr()) }, status::OK);
        assert_eq!(out, [1, 1, 0, 1, 1, 0]);

        let err = |req: &MaskRequest| {
            let mut out = [9u8; 6];
            let code = unsafe { compute(req, out.as_mut_ptr()) };
            let msg = unsafe { CStr::from_ptr(last_error()) }
                .to_str()
                .unwrap()
                .to_string();
            (code, msg)
        };
        let opt = |s: &'static [u8]| s.as_ptr() as *const c_char;
        req.options = opt(b"panic\0");
        let (code, msg) = err(&req);
        assert_eq!(
            (code, msg.as_str()),
            (status::PANIC, "plugin panicked: asked to panic")
        );
        req.options = opt(b"fail\0");
        assert_eq!(err(&req), (status::FAILED, "asked to fail".to_string()));
        req.options = std::ptr::null();
        req.struct_size -= 8;
        let (code, msg) = err(&req);
        assert_eq!(code, status::INVALID_REQUEST);
        assert!(msg.contains("struct_size"), "{msg}");
        req.struct_size += 8;
        req.pattern = PatternSpec {
            kind: PATTERN_NM,
            reserved: 0,
            k: 2,
            n: 1,
            m: 3,
        };
        assert_eq!(err(&req).0, status::UNSUPPORTED_PATTERN);
        req.pattern.kind = 7;
        assert_eq!(err(&req).0, status::UNSUPPORTED_PATTERN);
        assert_eq!(
            unsafe { compute(std::ptr::null(), out.as_mut_ptr()) },
            status::INVALID_REQUEST
        );
        req.pattern = request(&w, 2, 3, 2).pattern;
        assert_eq!(
            unsafe { compute(&req, std::ptr::null_mut()) },
            status::INVALID_REQUEST
        );
    }

    #[test]
    fn missing_gram_is_reported() {
        let w = [1.0f32; 4];
        let req = request(&w, 1, 4, 2);
        let r = unsafe { Request::from_raw(&req) }.unwrap();
        assert_eq!(
            r.gram_diag_or_full().unwrap_err().code,
            status::MISSING_INPUT
        );
        let g: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let mut req = req;
        req.gram = g.as_ptr();
        let r = unsafe { Request::from_raw(&req) }.unwrap();
        assert_eq!(&*r.gram_diag_or_full().unwrap(), &[0.0, 5.0, 10.0, 15.0]);
    }

    #[test]
    fn declared_needs_are_checked_before_compute() {
        use crate::{missing_input, NEEDS_FULL_GRAM, NEEDS_GRAM_DIAG};
        let d = unsafe { &*sparseswaps_plugin_v1() };
        assert_eq!(
            d.needs, 0,
            "a plugin exported without `needs:` declares none"
        );
        let w = [1.0f32; 4];
        let diag = [1.0f32; 4];
        let g = [1.0f32; 16];
        let mut req = request(&w, 1, 4, 2);
        let call = |req: &MaskRequest, needs: u32| {
            let mut out = [9u8; 4];
            let code = unsafe {
                crate::__private::compute(
                    SUPPORTS_UNSTRUCTURED,
                    needs,
                    req,
                    out.as_mut_ptr(),
                    keep_first,
                )
            };
            let msg = unsafe { CStr::from_ptr(crate::__private::last_error_ptr()) }
                .to_str()
                .unwrap()
                .to_string();
            (code, msg)
        };
        let (code, msg) = call(&req, NEEDS_FULL_GRAM);
        assert_eq!(code, status::MISSING_INPUT);
        assert!(msg.contains("needs the full Gram matrix"), "{msg}");
        assert_eq!(call(&req, NEEDS_GRAM_DIAG).0, status::MISSING_INPUT);
        req.gram_diag = diag.as_ptr();
        assert_eq!(call(&req, NEEDS_GRAM_DIAG).0, status::OK);
        assert_eq!(call(&req, NEEDS_FULL_GRAM).0, status::MISSING_INPUT);
        req.gram_diag = std::ptr::null();
        req.gram = g.as_ptr();
        // The full matrix also serves for its diagonal.
        assert_eq!(call(&req, NEEDS_GRAM_DIAG | NEEDS_FULL_GRAM).0, status::OK);
        assert_eq!(missing_input(0, false, false), None);
    }
}
