//! The C header and the Rust types describe the same ABI: a C program compiled against
//! `plugins/include/sparseswaps_plugin.h` prints every size, offset and constant, and they
//! must equal Rust's.

use sparseswaps_plugin_abi as abi;
use sparseswaps_testkit::c_build;
use std::collections::HashMap;
use std::mem::{offset_of, size_of};

const PROGRAM: &str = r#"
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "sparseswaps_plugin.h"
#define S(t) printf(#t ".size %zu\n", sizeof(t))
#define O(t, f) printf(#t "." #f " %zu\n", offsetof(t, f))
#define C(c) printf(#c " %lld\n", (long long)(c))
int main(void) {
    S(ss_pattern); O(ss_pattern, kind); O(ss_pattern, reserved); O(ss_pattern, k);
    O(ss_pattern, n); O(ss_pattern, m);
    S(ss_mask_request); O(ss_mask_request, struct_size); O(ss_mask_request, rows);
    O(ss_mask_request, cols); O(ss_mask_request, weights); O(ss_mask_request, gram_diag);
    O(ss_mask_request, gram); O(ss_mask_request, pattern); O(ss_mask_request, options);
    S(ss_descriptor); O(ss_descriptor, abi_version); O(ss_descriptor, struct_size);
    O(ss_descriptor, name); O(ss_descriptor, version); O(ss_descriptor, patterns);
    O(ss_descriptor, needs); O(ss_descriptor, compute); O(ss_descriptor, last_error);
    C(SPARSESWAPS_PLUGIN_ABI_VERSION); C(SS_OK); C(SS_ERR_INVALID_REQUEST);
    C(SS_ERR_UNSUPPORTED_PATTERN); C(SS_ERR_MISSING_INPUT); C(SS_ERR_FAILED); C(SS_ERR_PANIC);
    C(SS_PATTERN_UNSTRUCTURED); C(SS_PATTERN_NM); C(SS_SUPPORTS_UNSTRUCTURED); C(SS_SUPPORTS_NM);
    C(SS_NEEDS_GRAM_DIAG); C(SS_NEEDS_FULL_GRAM);
    printf("entry %s\n", SPARSESWAPS_PLUGIN_ENTRY_SYMBOL);
    return 0;
}
"#;

#[test]
fn c_header_matches_rust_types() {
    let root = c_build::repo_root(env!("CARGO_MANIFEST_DIR"));
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("plugin-abi-header");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    std::fs::write(&src, PROGRAM).unwrap();
    let exe = c_build::build_c_program(&root, &src, &dir.join("layout"));
    let out = std::process::Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let c: HashMap<&str, &str> = text.lines().map(|l| l.split_once(' ').unwrap()).collect();
    let rust: Vec<(&str, String)> = vec![
        ("ss_pattern.size", size_of::<abi::PatternSpec>().to_string()),
        (
            "ss_pattern.kind",
            offset_of!(abi::PatternSpec, kind).to_string(),
        ),
        (
            "ss_pattern.reserved",
            offset_of!(abi::PatternSpec, reserved).to_string(),
        ),
        ("ss_pattern.k", offset_of!(abi::PatternSpec, k).to_string()),
        ("ss_pattern.n", offset_of!(abi::PatternSpec, n).to_string()),
        ("ss_pattern.m", offset_of!(abi::PatternSpec, m).to_string()),
        (
            "ss_mask_request.size",
            size_of::<abi::MaskRequest>().to_string(),
        ),
        (
            "ss_mask_request.struct_size",
            offset_of!(abi::MaskRequest, struct_size).to_string(),
        ),
        (
            "ss_mask_request.rows",
            offset_of!(abi::MaskRequest, rows).to_string(),
        ),
        (
            "ss_mask_request.cols",
            offset_of!(abi::MaskRequest, cols).to_string(),
        ),
        (
            "ss_mask_request.weights",
            offset_of!(abi::MaskRequest, weights).to_string(),
        ),
        (
            "ss_mask_request.gram_diag",
            offset_of!(abi::MaskRequest, gram_diag).to_string(),
        ),
        (
            "ss_mask_request.gram",
            offset_of!(abi::MaskRequest, gram).to_string(),
        ),
        (
            "ss_mask_request.pattern",
            offset_of!(abi::MaskRequest, pattern).to_string(),
        ),
        (
            "ss_mask_request.options",
            offset_of!(abi::MaskRequest, options).to_string(),
        ),
        (
            "ss_descriptor.size",
            size_of::<abi::Descriptor>().to_string(),
        ),
        (
            "ss_descriptor.abi_version",
            offset_of!(abi::Descriptor, abi_version).to_string(),
        ),
        (
            "ss_descriptor.struct_size",
            offset_of!(abi::Descriptor, struct_size).to_string(),
        ),
        (
            "ss_descriptor.name",
            offset_of!(abi::Descriptor, name).to_string(),
        ),
        (
            "ss_descriptor.version",
            offset_of!(abi::Descriptor, version).to_string(),
        ),
        (
            "ss_descriptor.patterns",
            offset_of!(abi::Descriptor, patterns).to_string(),
        ),
        (
            "ss_descriptor.needs",
            offset_of!(abi::Descriptor, needs).to_string(),
        ),
        (
            "ss_descriptor.compute",
            offset_of!(abi::Descriptor, compute).to_string(),
        ),
        (
            "ss_descriptor.last_error",
            offset_of!(abi::Descriptor, last_error).to_string(),
        ),
        (
            "SPARSESWAPS_PLUGIN_ABI_VERSION",
            abi::ABI_VERSION.to_string(),
        ),
        ("SS_OK", abi::status::OK.to_string()),
        (
            "SS_ERR_INVALID_REQUEST",
            abi::status::INVALID_REQUEST.to_string(),
        ),
        (
            "SS_ERR_UNSUPPORTED_PATTERN",
            abi::status::UNSUPPORTED_PATTERN.to_string(),
        ),
        (
            "SS_ERR_MISSING_INPUT",
            abi::status::MISSING_INPUT.to_string(),
        ),
        ("SS_ERR_FAILED", abi::status::FAILED.to_string()),
        ("SS_ERR_PANIC", abi::status::PANIC.to_string()),
        (
            "SS_PATTERN_UNSTRUCTURED",
            abi::PATTERN_UNSTRUCTURED.to_string(),
        ),
        ("SS_PATTERN_NM", abi::PATTERN_NM.to_string()),
        (
            "SS_SUPPORTS_UNSTRUCTURED",
            abi::SUPPORTS_UNSTRUCTURED.to_string(),
        ),
        ("SS_SUPPORTS_NM", abi::SUPPORTS_NM.to_string()),
        ("SS_NEEDS_GRAM_DIAG", abi::NEEDS_GRAM_DIAG.to_string()),
        ("SS_NEEDS_FULL_GRAM", abi::NEEDS_FULL_GRAM.to_string()),
        ("entry", abi::ENTRY_SYMBOL.to_string()),
    ];
    assert_eq!(c.len(), rust.len(), "C printed {c:?}");
    for (key, want) in &rust {
        assert_eq!(
            c.get(key),
            Some(&want.as_str()),
            "{key}: C says {:?}, Rust {want}",
            c.get(key)
        );
    }
    // Option<fn> is a nullable function pointer, as in C.
    assert_eq!(size_of::<Option<abi::ComputeFn>>(), size_of::<usize>());
}
