//! Gram accumulation `G += Aᵀ A` on cuBLAS, f32 output from f32, bf16 or f16 activations.
//!
//! `A` is a batch of activations `[tokens, d_in]`, row-major (what a PyTorch hook
//! captures); `G = Aᵀ A` is `[d_in, d_in]` (the `X Xᵀ` of `docs/algorithm.md` with `X = Aᵀ`).
//! Products run in cuBLAS's `CUBLAS_COMPUTE_32F` (f32 accumulation, no TF32), so bf16
//! inputs lose nothing beyond their own rounding. The result is made exactly symmetric
//! (the upper triangle is copied onto the lower) because the core crate checks symmetry
//! and GEMM may round `G[i,j]` and `G[j,i]` differently.

use std::ffi::c_void;

use cudarc::cublas::{result as blas, sys as blas_sys, CudaBlas};
use cudarc::driver::{CudaSlice, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use crate::backend::CudaBackend;
use crate::error::{cublas_err, driver_err, KernelsError, Result};
use crate::guard::{guard, guard_driver};
use crate::probe;

/// A batch of activations, row-major `[tokens, d_in]`. Half-precision values are passed
/// as their raw 16-bit patterns (as `half::bf16::to_bits` gives them), so callers need
/// no particular half-float crate.
#[derive(Debug, Clone, Copy)]
pub enum Activations<'a> {
    /// f32 values.
    F32(&'a [f32]),
    /// bfloat16 bit patterns.
    Bf16(&'a [u16]),
    /// IEEE binary16 bit patterns.
    F16(&'a [u16]),
}

impl Activations<'_> {
    fn len(&self) -> usize {
        match self {
            Activations::F32(x) => x.len(),
            Activations::Bf16(x) | Activations::F16(x) => x.len(),
        }
    }
}

/// A Gram matrix being accumulated on the device.
pub struct CudaGram<'b> {
    backend: &'b CudaBackend,
    blas: CudaBlas,
    gram: CudaSlice<f32>,
    d_in: usize,
    tokens: u64,
}

impl std::fmt::Debug for CudaGram<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGram")
            .field("d_in", &self.d_in)
            .field("tokens", &self.tokens)
            .finish()
    }
}

impl<'b> CudaGram<'b> {
    /// A zero Gram matrix of order `d_in` on `backend`'s device. Checks for cuBLAS first
    /// ([`KernelsError::NoCublas`]), since cudarc panics when it is absent.
    pub fn new(backend: &'b CudaBackend, d_in: usize) -> Result<Self> {
        if d_in == 0 || d_in > i32::MAX as usize {
            return Err(KernelsError::Core(sparseswaps_core::CoreError::Shape(
                format!("Gram order d_in = {d_in} is out of range"),
            )));
        }
        probe::check_cublas()?;
        let stream = backend.stream().clone();
        // cudarc panics when a cuBLAS symbol is missing (a cuBLAS older than its bindings).
        let blas = guard(
            || CudaBlas::new(stream),
            |m| KernelsError::NoCublas {
                tried: "cublas".into(),
                detail: format!("cuBLAS panicked while creating a handle: {m}"),
            },
        )?
        .map_err(|e| cublas_err("creating a cuBLAS handle", e))?;
        let gram = guard_driver("allocating the Gram matrix", || {
            backend
                .stream()
                .alloc_zeros::<f32>(d_in * d_in)
                .map_err(|e| driver_err("allocating the Gram matrix", e))
        })?;
        Ok(CudaGram {
            backend,
            blas,
            gram,
            d_in,
            tokens: 0,
        })
    }

    /// Order of the matrix.
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Tokens accumulated so far.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Adds `Aᵀ A` for one batch `A` of `[tokens, d_in]` activations.
    pub fn add(&mut self, batch: Activations<'_>) -> Result<()> {
        let d = self.d_in;
        if batch.len() % d != 0 {
            return Err(KernelsError::Core(sparseswaps_core::CoreError::Shape(
                format!(
                    "activation batch has {} values, not a multiple of d_in = {d}",
                    batch.len()
                ),
            )));
        }
        let tokens = batch.len() / d;
        if tokens == 0 {
            return Ok(());
        }
        if tokens > i32::MAX as usize {
            return Err(KernelsError::Core(sparseswaps_core::CoreError::Shape(
                format!("batch of {tokens} tokens is too large for one GEMM; split it"),
            )));
        }
        guard_driver("accumulating the Gram matrix", || {
            self.upload_and_gemm(batch, tokens)
        })?;
        self.tokens += tokens as u64;
        Ok(())
    }

    fn upload_and_gemm(&mut self, batch: Activations<'_>, tokens: usize) -> Result<()> {
        let s = self.backend.stream().clone();
        let up = |e| driver_err("uploading activations", e);
        match batch {
            Activations::F32(x) => {
                let dev = s.clone_htod(x).map_err(up)?;
                self.gemm(&dev, blas_sys::cudaDataType::CUDA_R_32F, tokens)?;
            }
            Activations::Bf16(x) => {
                let dev = s.clone_htod(x).map_err(up)?;
                self.gemm(&dev, blas_sys::cudaDataType::CUDA_R_16BF, tokens)?;
            }
            Activations::F16(x) => {
                let dev = s.clone_htod(x).map_err(up)?;
                self.gemm(&dev, blas_sys::cudaDataType::CUDA_R_16F, tokens)?;
            }
        }
        Ok(())
    }

    fn gemm<T>(
        &mut self,
        x: &CudaSlice<T>,
        ty: blas_sys::cudaDataType,
        tokens: usize,
    ) -> Result<()> {
        let d = self.d_in as i32;
        let stream = self.backend.stream().clone();
        let alpha = 1.0f32;
        let beta = 1.0f32;
        // Row-major A [tokens, d] is column-major Aᶜ [d, tokens] with ld = d; then
        // G (d x d, column-major, symmetric so also row-major) = Aᶜ Aᶜᵀ.
        let (xp, _rx) = x.device_ptr(&stream);
        let (gp, _rg) = self.gram.device_ptr_mut(&stream);
        // SAFETY: pointers are live device buffers of the sizes the dimensions describe
        // (x: d * tokens elements of type `ty`; G: d * d f32); alpha and beta are host
        // pointers, valid under the default host pointer mode.
        unsafe {
            blas::gemm_ex(
                *self.blas.handle(),
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                d,
                d,
                tokens as i32,
                &alpha as *const f32 as *const c_void,
                xp as *const c_void,
                ty,
                d,
                xp as *const c_void,
                ty,
                d,
                &beta as *const f32 as *const c_void,
                gp as *mut c_void,
                blas_sys::cudaDataType::CUDA_R_32F,
                d,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| cublas_err("accumulating the Gram matrix (cublasGemmEx)", e))
    }

    /// Makes the matrix exactly symmetric and downloads it, row-major `[d_in, d_in]`.
    pub fn finish(mut self) -> Result<Vec<f32>> {
        guard_driver("finishing the Gram matrix", || {
            self.symmetrize_and_download()
        })
    }

    fn symmetrize_and_download(&mut self) -> Result<Vec<f32>> {
        let d = self.d_in;
        let d_i = d as i32;
        let s = self.backend.stream().clone();
        let cfg = LaunchConfig {
            grid_dim: (d.div_ceil(16) as u32, d.div_ceil(16) as u32, 1),
            block_dim: (16, 16, 1),
            shared_mem_bytes: 0,
        };
        let mut l = s.launch_builder(self.backend.symmetrize_kernel());
        l.arg(&mut self.gram).arg(&d_i);
        // SAFETY: the kernel takes (float* G, int d) and G holds d * d values.
        unsafe { l.launch(cfg) }.map_err(|e| driver_err("launching symmetrize_upper", e))?;
        s.clone_dtoh(&self.gram)
            .map_err(|e| driver_err("downloading the Gram matrix", e))
    }
}

/// One-shot Gram matrix of a single batch (see [`CudaGram`]).
pub fn gram_of(backend: &CudaBackend, d_in: usize, batch: Activations<'_>) -> Result<Vec<f32>> {
    let mut g = CudaGram::new(backend, d_in)?;
    g.add(batch)?;
    g.finish()
}
