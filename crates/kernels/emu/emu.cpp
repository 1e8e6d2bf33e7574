// Host side of the CUDA emulation (see shim.h): a fiber scheduler that runs kernel
// launches block by block, and emu_refine, a mirror of backend.rs's per-chunk host loop, exported
// with C linkage for tests/emulated.rs.
#include "shim.h"

#include <ucontext.h>

#include <algorithm>
#include <mutex>

#include "swaps.cu"

EmuThreadIdx emu_t;

namespace {

constexpr size_t STACK = 64 * 1024;

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    EmuThreadIdx idx;
    bool done = false;
};

struct Scheduler {
    ucontext_t main;
    std::vector<Fiber> fibers;
    std::vector<EmuBarrier> warp_bars;
    std::vector<uint64_t> warp_buf;
    EmuBarrier block_bar;
    const std::function<void()>* job = nullptr;
    unsigned cur = 0;
};

Scheduler& sched() {
    static Scheduler s;
    return s;
}

void fiber_entry() {
    Scheduler& s = sched();
    (*s.job)();
    // An exited thread no longer takes part in barriers, as on the GPU: leaving may
    // complete a barrier the others wait at.
    Fiber& f = s.fibers[s.cur];
    f.done = true;
    auto leave = [](EmuBarrier& b) {
        b.live--;
        if (b.live > 0 && b.arrived == b.live) {
            b.arrived = 0;
            b.generation++;
        }
    };
    leave(s.block_bar);
    leave(s.warp_bars[s.cur / 32]);
    // Returning resumes uc_link (the scheduler).
}

}  // namespace

void emu_barrier_wait(EmuBarrier& b) {
    Scheduler& s = sched();
    unsigned g = b.generation;
    if (++b.arrived == b.live) {
        b.arrived = 0;
        b.generation++;
        return;
    }
    while (b.generation == g) swapcontext(&s.fibers[s.cur].ctx, &s.main);
}

EmuBarrier& emu_block_barrier() { return sched().block_bar; }
EmuBarrier& emu_warp_barrier() { return sched().warp_bars[sched().cur / 32]; }
uint64_t* emu_warp_buffer() { return &sched().warp_buf[(sched().cur / 32) * 32]; }

void emu_launch(dim3 grid, dim3 block, const std::function<void()>& f) {
    // One launch at a time in the process: __shared__ statics and the scheduler are global
    // (callers on several threads, such as parallel tests, take turns).
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    Scheduler& s = sched();
    unsigned n = block.x * block.y * block.z;
    if (n == 0 || n % 32 != 0) std::abort();
    if (s.fibers.size() < n) s.fibers.resize(n);
    for (auto& fb : s.fibers)
        if (fb.stack.size() != STACK) fb.stack.assign(STACK, 0);
    s.job = &f;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                s.block_bar = EmuBarrier{n, 0, 0};
                s.warp_bars.assign(n / 32, EmuBarrier{32, 0, 0});
                s.warp_buf.assign(n, 0);
                for (unsigned t = 0; t < n; ++t) {
                    Fiber& fb = s.fibers[t];
                    fb.done = false;
                    fb.idx.bi = dim3{bx, by, bz};
                    fb.idx.gd = grid;
                    fb.idx.bd = block;
                    fb.idx.ti = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                    getcontext(&fb.ctx);
                    fb.ctx.uc_stack.ss_sp = fb.stack.data();
                    fb.ctx.uc_stack.ss_size = STACK;
                    fb.ctx.uc_link = &s.main;
                    makecontext(&fb.ctx, fiber_entry, 0);
                }
                // Round-robin until every fiber has finished; a fiber runs until it
                // finishes or waits at a barrier.
                for (unsigned left = n; left > 0;) {
                    left = 0;
                    for (unsigned t = 0; t < n; ++t) {
                        Fiber& fb = s.fibers[t];
                        if (fb.done) continue;
                        s.cur = t;
                        emu_t = fb.idx;
                        swapcontext(&s.main, &fb.ctx);
                        if (!fb.done) left++;
                    }
                }
            }
}

namespace {
dim3 D(unsigned x, unsigned y = 1) { return dim3{x, y, 1}; }
unsigned cdiv(size_t a, size_t b) { return (unsigned)((a + b - 1) / b); }
}  // namespace

// Mirror of CudaBackend::run_chunk / iterate (backend.rs) for one chunk of `rows` rows:
// same launches, same grids, same pre-stop rules. m == 0: unstructured. Status codes as in
// swaps.cu (1 optimal, 2 max swaps, 3 nothing to swap).
extern "C" int emu_refine(const float* G, const float* W, unsigned char* mask, int rows, int d,
                          int m, int k, long long max_swaps, int every, double rel_tol,
                          double* warm, double* fin, double* energy, int* swaps, int* steps,
                          int* status) {
    size_t n = (size_t)rows * d;
    std::vector<double> c(n), y(n), err(rows), en(rows);
    std::vector<float> hb(2 * n), minv(n);
    std::vector<int> st(rows, 0), sw(rows, 0), sp(rows, 0), since(rows, 0),
        need(rows, 1), picks(2 * (size_t)rows);
    auto recompute = [&](int wy) {
        emu_launch(D(cdiv(d, 256), cdiv(rows, 8)), D(256), [&] {
            recompute_c(G, W, mask, need.data(), c.data(), y.data(), wy, rows, d);
        });
        emu_launch(D(cdiv(rows, 128)), D(128), [&] {
            row_sums(W, mask, c.data(), y.data(), wy, need.data(), err.data(), en.data(), rows, d);
        });
    };
    recompute(1);
    for (int r = 0; r < rows; ++r) {
        warm[r] = err[r];
        energy[r] = en[r];
    }
    bool pre = false;
    if (max_swaps == 0) {
        std::fill(st.begin(), st.end(), 2);
        pre = true;
    } else if (m == 0 && (k == 0 || k == d)) {
        std::fill(st.begin(), st.end(), 3);
        std::fill(sp.begin(), sp.end(), 1);
        pre = true;
    }
    while (!pre) {
        if (m == 0) {
            emu_launch(D(rows, cdiv(d, 256)), D(256), [&] {
                prep_unstructured(G, W, mask, c.data(), st.data(), (float2*)hb.data(), rows, d);
            });
            emu_launch(D(cdiv(d, 128), cdiv(rows, 32)), D(256), [&] {
                search_unstructured(G, W, (const float2*)hb.data(), st.data(), minv.data(), rows, d);
            });
            emu_launch(D(rows), D(256), [&] {
                pick_apply_unstructured(G, W, mask, c.data(), minv.data(), (const float2*)hb.data(), st.data(),
                                        err.data(), sw.data(), sp.data(), since.data(),
                                        need.data(), rows, d, max_swaps, every, rel_tol, 1,
                                        picks.data());
            });
        } else {
            emu_launch(D(rows), D(256), [&] {
                step_nm(G, W, mask, c.data(), st.data(), err.data(), sw.data(), sp.data(),
                        since.data(), need.data(), rows, d, m, max_swaps, every, rel_tol);
            });
        }
        recompute(0);
        if (std::none_of(st.begin(), st.end(), [](int s) { return s == 0; })) break;
    }
    for (int r = 0; r < rows; ++r) {
        fin[r] = err[r];
        swaps[r] = sw[r];
        steps[r] = sp[r];
        status[r] = st[r];
    }
    return 0;
}

// Mirror of CudaBackend::best_swaps_unstructured for one chunk: one search step, nothing
// applied; picks[2r], picks[2r + 1] = (u, q) or -1.
extern "C" int emu_best_swaps(const float* G, const float* W, unsigned char* mask, int rows,
                              int d, int* picks) {
    size_t n = (size_t)rows * d;
    std::vector<double> c(n), y(n), err(rows), en(rows);
    std::vector<float> hb(2 * n), minv(n);
    std::vector<int> st(rows, 0), sw(rows, 0), sp(rows, 0), since(rows, 0),
        need(rows, 1);
    emu_launch(D(cdiv(d, 256), cdiv(rows, 8)), D(256), [&] {
        recompute_c(G, W, mask, need.data(), c.data(), y.data(), 0, rows, d);
    });
    emu_launch(D(cdiv(rows, 128)), D(128), [&] {
        row_sums(W, mask, c.data(), y.data(), 0, need.data(), err.data(), en.data(), rows, d);
    });
    emu_launch(D(rows, cdiv(d, 256)), D(256), [&] {
        prep_unstructured(G, W, mask, c.data(), st.data(), (float2*)hb.data(), rows, d);
    });
    emu_launch(D(cdiv(d, 128), cdiv(rows, 32)), D(256), [&] {
        search_unstructured(G, W, (const float2*)hb.data(), st.data(), minv.data(), rows, d);
    });
    emu_launch(D(rows), D(256), [&] {
        pick_apply_unstructured(G, W, mask, c.data(), minv.data(), (const float2*)hb.data(), st.data(),
                                err.data(), sw.data(), sp.data(), since.data(), need.data(), rows,
                                d, 100, 32, 1e-9, 0, picks);
    });
    return 0;
}

// The Gram helper kernel: copies the upper triangle onto the lower.
extern "C" void emu_symmetrize(float* G, int d) {
    emu_launch(D(cdiv(d, 16), cdiv(d, 16)), D(16, 16), [&] { symmetrize_upper(G, d); });
}
