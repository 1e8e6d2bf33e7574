// CPU emulation of the CUDA subset that cuda/swaps.cu uses, so the kernels' logic (indexing,
// tiling, reductions, tie rule, decisions) can be checked against the CPU engine on
// machines without a GPU (tests/emulated.rs, every CI run).
//
// Model: one block at a time; each of its threads is a fiber (ucontext) on one OS thread,
// run until it reaches a barrier, so __syncthreads is a real barrier (a thread that reads
// shared data another wrote without one in between sees a stale value) and a missing one
// can show up as a wrong result; __shared__ variables are statics (one block runs at a
// time); warp shuffles go through a per-warp buffer between two warp barriers (every lane
// of a warp must call them, as on the GPU). The rounding intrinsics are plain IEEE
// operations through volatile, so the compiler cannot contract them (the file is also
// compiled with -ffp-contract=off).
//
// What it cannot show: real-GPU memory-model races between blocks, warp-synchronous
// assumptions, performance, and the device's own arithmetic (IEEE round-to-nearest there
// too for these intrinsics). The GPU tests (tests/gpu.rs) remain the final word.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

struct dim3 { unsigned x = 1, y = 1, z = 1; };
struct float2 { float x, y; };
static inline float2 make_float2(float a, float b) { return float2{a, b}; }

struct EmuThreadIdx { dim3 ti, bi, bd, gd; };
extern EmuThreadIdx emu_t;
#define threadIdx (emu_t.ti)
#define blockIdx (emu_t.bi)
#define blockDim (emu_t.bd)
#define gridDim (emu_t.gd)

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __shared__ static
#define __launch_bounds__(x)

// A barrier among the live fibers of a group (a block, or a warp).
struct EmuBarrier {
    unsigned live = 0, arrived = 0, generation = 0;
};
// Waits at `b` (yielding to the other fibers until all live ones have arrived).
void emu_barrier_wait(EmuBarrier& b);
// The current fiber's block barrier, warp barrier and warp exchange buffer.
EmuBarrier& emu_block_barrier();
EmuBarrier& emu_warp_barrier();
uint64_t* emu_warp_buffer();

static inline void __syncthreads() { emu_barrier_wait(emu_block_barrier()); }

template <typename T>
static inline T __shfl_down_sync(unsigned, T v, int off) {
    int lane = (threadIdx.x + threadIdx.y * blockDim.x) % 32;
    uint64_t* buf = emu_warp_buffer();
    uint64_t slot = 0;
    std::memcpy(&slot, &v, sizeof(T));
    buf[lane] = slot;
    emu_barrier_wait(emu_warp_barrier());
    T r = v;
    if (lane + off < 32) std::memcpy(&r, &buf[lane + off], sizeof(T));
    emu_barrier_wait(emu_warp_barrier());
    return r;
}

static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline double __dmul_rn(double a, double b) { volatile double r = a * b; return r; }
static inline double __dadd_rn(double a, double b) { volatile double r = a + b; return r; }
static inline double __dsub_rn(double a, double b) { volatile double r = a - b; return r; }
static inline float __double2float_rn(double a) { return (float)a; }
static inline double __dsqrt_rn(double a) { return std::sqrt(a); }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline double __longlong_as_double(long long i) { double f; std::memcpy(&f, &i, 8); return f; }
using std::fabs;
using std::fmax;
using std::fminf;
using std::min;

// Runs f for every thread of every block of the grid.
void emu_launch(dim3 grid, dim3 block, const std::function<void()>& f);
