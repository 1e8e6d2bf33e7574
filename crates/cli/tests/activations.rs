//! `refine-layer --activations`: the Gram matrix accumulated from raw layer inputs.

use sparseswaps_gram::{GramAccumulator, GramDtype};
use sparseswaps_tensor_io::{read_tensor_u8, write_safetensors_atomic, OwnedTensor, TensorSpec};
use std::path::Path;
use std::process::Command;

fn sparseswaps(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sparseswaps"))
        .args(args)
        .output()
        .expect("run sparseswaps")
}

fn assert_ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write(path: &Path, name: &str, shape: Vec<usize>, data: &[f32]) {
    write_safetensors_atomic(path, &[(name.into(), OwnedTensor::f32(shape, data))], None).unwrap();
}

#[test]
fn activations_give_the_same_mask_as_their_gram() {
    let dir = tempfile::tempdir().unwrap();
    let (d_out, d_in, tokens) = (6usize, 16usize, 5000usize);
    // Deterministic pseudo-random data with two outlier channels.
    let mut s = 12345u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32
    };
    let w: Vec<f32> = (0..d_out * d_in).map(|_| next()).collect();
    let x: Vec<f32> = (0..tokens * d_in)
        .map(|i| {
            if i % d_in == 3 || i % d_in == 11 {
                100.0 * next()
            } else {
                next()
            }
        })
        .collect();
    let wp = dir.path().join("w.safetensors");
    let ap = dir.path().join("acts.safetensors");
    let gp = dir.path().join("gram.safetensors");
    write(&wp, "weight", vec![d_out, d_in], &w);
    write(&ap, "x", vec![tokens, d_in], &x);
    let mut acc = GramAccumulator::new(d_in);
    acc.add_batch(&x, tokens).unwrap();
    acc.save(&gp, GramDtype::F64).unwrap();
    let (m1, m2) = (
        dir.path().join("m1.safetensors"),
        dir.path().join("m2.safetensors"),
    );
    let common = [
        "refine-layer",
        "--weight",
        wp.to_str().unwrap(),
        "--sparsity",
        "0.5",
    ];
    let refine = |rest: &[&str]| sparseswaps(&[&common[..], rest].concat());
    assert_ok(&refine(&[
        "--activations",
        ap.to_str().unwrap(),
        "--out",
        m1.to_str().unwrap(),
    ]));
    assert_ok(&refine(&[
        "--gram",
        gp.to_str().unwrap(),
        "--out",
        m2.to_str().unwrap(),
    ]));
    let a = read_tensor_u8(&TensorSpec::parse(m1.to_str().unwrap()), 2).unwrap();
    let b = read_tensor_u8(&TensorSpec::parse(m2.to_str().unwrap()), 2).unwrap();
    assert_eq!(a.data, b.data);

    // Exactly one of --gram and --activations.
    let m3 = dir.path().join("m3.safetensors");
    let both = refine(&[
        "--gram",
        gp.to_str().unwrap(),
        "--activations",
        ap.to_str().unwrap(),
        "--out",
        m3.to_str().unwrap(),
    ]);
    assert!(!both.status.success());
    assert!(String::from_utf8_lossy(&both.stderr).contains("cannot be used with"));
    let none = refine(&["--out", m3.to_str().unwrap()]);
    assert!(!none.status.success());

    // A NaN in the activations names the file, the row and the column.
    let mut bad = x.clone();
    bad[4100 * d_in + 7] = f32::NAN;
    write(&ap, "x", vec![tokens, d_in], &bad);
    let out = refine(&[
        "--activations",
        ap.to_str().unwrap(),
        "--out",
        m3.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    // Row 4100 is in the second batch of 4096 tokens; the message names the file's row.
    assert!(
        err.contains("acts.safetensors") && err.contains("NaN at row 4100 (token), column 7"),
        "{err}"
    );
    assert!(!m3.exists());
}
