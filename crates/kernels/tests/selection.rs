//! Backend selection and availability reporting. These run everywhere; on a machine
//! without a usable GPU they check the fallback and the error, on one with a GPU they
//! check that CUDA is chosen.

use sparseswaps_kernels::{
    cuda_unavailable_reason, ptx, select_backend, BackendKind, CudaBackend, KernelsError,
};

#[test]
fn auto_picks_cpu_with_the_reason_when_cuda_cannot_run() {
    let (backend, reason) = select_backend(BackendKind::Auto).unwrap();
    match cuda_unavailable_reason() {
        Some(why) => {
            assert_eq!(backend.name(), "cpu");
            let reason = reason.expect("auto must say why it fell back");
            assert!(reason.contains(&why), "{reason} / {why}");
            println!("auto -> cpu: {reason}");
        }
        None => {
            assert_eq!(backend.name(), "cuda");
            assert!(reason.is_none());
        }
    }
}

#[test]
fn cuda_fails_with_the_reason_when_it_cannot_run() {
    match (select_backend(BackendKind::Cuda), cuda_unavailable_reason()) {
        (Err(e), Some(why)) => {
            assert_eq!(e.to_string(), why);
            assert!(
                e.is_unavailable() || matches!(e, KernelsError::Driver { .. }),
                "{e:?}"
            );
            assert!(e.to_string().starts_with("CUDA"), "{e}");
            println!("cuda -> error: {e}");
        }
        (Ok((b, None)), None) => assert_eq!(b.name(), "cuda"),
        (r, why) => panic!(
            "inconsistent: select gave {:?}, reason {why:?}",
            r.map(|(b, _)| b.name().to_string())
        ),
    }
}

#[test]
fn cpu_is_always_available() {
    let (b, reason) = select_backend(BackendKind::Cpu).unwrap();
    assert_eq!(b.name(), "cpu");
    assert!(reason.is_none());
}

#[test]
fn backend_kinds_parse_and_print() {
    for (s, k) in [
        ("cpu", BackendKind::Cpu),
        ("CUDA", BackendKind::Cuda),
        (" auto ", BackendKind::Auto),
    ] {
        let parsed: BackendKind = s.parse().unwrap();
        assert_eq!(parsed, k);
        assert_eq!(parsed.to_string().parse::<BackendKind>().unwrap(), k);
    }
    let e = "tpu".parse::<BackendKind>().unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown backend 'tpu': expected cpu, cuda or auto"
    );
}

/// The first failing check is the one reported: without PTX, nothing else is tried.
#[test]
fn checks_run_in_order() {
    match CudaBackend::new(0) {
        Ok(_) => assert!(ptx::swaps_ptx().is_ok()),
        Err(e) if !ptx::PTX_BUILT => {
            assert!(matches!(e, KernelsError::KernelsNotBuilt { .. }), "{e:?}");
            let why = ptx::PTX_MISSING_REASON.unwrap();
            assert!(e.to_string().contains(why), "{e}");
        }
        Err(e) => {
            // Kernels built: the failure is about the driver, the device or memory.
            assert!(!matches!(e, KernelsError::KernelsNotBuilt { .. }), "{e:?}");
        }
    }
}

#[test]
fn ptx_status_is_consistent() {
    assert_eq!(ptx::PTX_BUILT, ptx::SWAPS_PTX.is_some());
    assert_eq!(ptx::PTX_BUILT, ptx::PTX_MISSING_REASON.is_none());
    assert!(ptx::PTX_ARCH.starts_with("compute_"));
    if let Some(src) = ptx::SWAPS_PTX {
        for k in [
            "recompute_c",
            "row_sums",
            "prep_unstructured",
            "search_unstructured",
            "pick_apply_unstructured",
            "step_nm",
            "symmetrize_upper",
        ] {
            assert!(src.contains(&format!(".entry {k}(")), "PTX lacks {k}");
        }
        let isa = ptx::ptx_isa_version().expect("PTX has a .version line");
        assert!(isa.split('.').all(|p| p.parse::<u32>().is_ok()), "{isa}");
        // The CPU's rounding is reproduced only without fused multiply-adds.
        assert!(!src.contains("fma."), "PTX contains fused multiply-adds");
        // ptxas may fuse a mul and an add that carry no rounding modifier; `.rn` ones it
        // leaves alone, so every float multiply and add must carry it.
        for op in [
            "mul.f32", "add.f32", "sub.f32", "mul.f64", "add.f64", "sub.f64",
        ] {
            assert!(
                !src.contains(op),
                "PTX has {op} without an explicit rounding mode"
            );
        }
    }
    println!("{}", ptx::build_info());
}

#[test]
fn device_errors_reach_the_core_error_type_with_their_message() {
    let e = KernelsError::NoDriver {
        tried: "libcuda.so".into(),
        detail: "not found".into(),
    };
    let msg = e.to_string();
    assert!(
        msg.starts_with("CUDA backend unavailable: no NVIDIA driver"),
        "{msg}"
    );
    assert_eq!(
        e.into_core().to_string(),
        format!("cuda backend failed: {msg}")
    );
    let core = sparseswaps_core::CoreError::InvalidMask("x".into());
    assert_eq!(KernelsError::Core(core.clone()).into_core(), core);
}
