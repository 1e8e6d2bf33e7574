//! A layer on disk as `refine-layer` reads it: the CLI tests build small layers and
//! write their weights and Gram matrix the same way.

use sparseswaps_tensor_io::{write_safetensors_atomic, OwnedTensor};
use std::path::{Path, PathBuf};

/// `Σ_t x_t x_tᵀ` over the rows `x_t` of `x` (`[tokens, d_in]`, row-major), summed in
/// f32 in row order: the Gram matrix of those activations.
pub fn gram_of_rows(x: &[f32], d_in: usize) -> Vec<f32> {
    let mut g = vec![0f32; d_in * d_in];
    for t in x.chunks(d_in) {
        for i in 0..d_in {
            for j in 0..d_in {
                g[i * d_in + j] += t[i] * t[j];
            }
        }
    }
    g
}

/// Writes weights `w` (`[d_out, d_in]`, tensor `weight`) to `dir/w.safetensors` and the
/// Gram matrix `g` (`[d_in, d_in]`, tensor `gram`) to `dir/g.safetensors`; returns both
/// paths.
///
/// # Panics
/// When a file cannot be written (a test's setup failing).
pub fn write_layer_files(
    dir: &Path,
    w: &[f32],
    d_out: usize,
    d_in: usize,
    g: &[f32],
) -> (PathBuf, PathBuf) {
    let (wp, gp) = (dir.join("w.safetensors"), dir.join("g.safetensors"));
    write_safetensors_atomic(
        &wp,
        &[("weight".into(), OwnedTensor::f32(vec![d_out, d_in], w))],
        None,
    )
    .expect("writing the test layer's weights");
    write_safetensors_atomic(
        &gp,
        &[("gram".into(), OwnedTensor::f32(vec![d_in, d_in], g))],
        None,
    )
    .expect("writing the test layer's Gram matrix");
    (wp, gp)
}
