// Host side of the CUDA emulation (see shim.h): a thread pool that runs kernel launches
// block by block, and emu_refine, a mirror of backend.rs's per-chunk host loop, exported
// with C linkage for tests/emulated.rs.
#include "shim.h"

#include <algorithm>
#include <mutex>

#include "swaps.cu"

thread_local EmuThreadIdx emu_t;
EmuBlock* emu_block = nullptr;

namespace {

// The largest block any launch below uses.
constexpr unsigned POOL = 256;

struct Pool {
    std::barrier<> start{POOL + 1};
    std::barrier<> end{POOL + 1};
    const std::function<void()>* job = nullptr;
    dim3 grid, block, bidx;
    unsigned nthreads = 0;

    Pool() {
        for (unsigned t = 0; t < POOL; ++t) {
            // Detached and never joined: the pool lives as long as the process.
            std::thread([this, t] { worker(t); }).detach();
        }
    }

    void worker(unsigned t) {
        for (;;) {
            start.arrive_and_wait();
            if (t < nthreads) {
                emu_t.bi = bidx;
                emu_t.gd = grid;
                emu_t.bd = block;
                emu_t.ti = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                (*job)();
                // An exited thread no longer takes part in barriers, as on the GPU.
                emu_block->bar->arrive_and_drop();
                emu_block->warp_bar[t / 32]->arrive_and_drop();
            }
            end.arrive_and_wait();
        }
    }
};

Pool& pool() {
    // Leaked on purpose: no destructor may run while workers wait on its barriers.
    static Pool* p = new Pool();
    return *p;
}

}  // namespace

void emu_launch(dim3 grid, dim3 block, const std::function<void()>& f) {
    // One launch at a time in the process: __shared__ statics, emu_block and the pool are
    // global (callers on several threads, such as parallel tests, take turns).
    static std::mutex mu;
    std::lock_guard<std::mutex> lock(mu);
    Pool& p = pool();
    unsigned n = block.x * block.y * block.z;
    if (n == 0 || n > POOL || n % 32 != 0) std::abort();
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                EmuBlock b;
                b.bar = std::make_unique<std::barrier<>>(n);
                for (unsigned w = 0; w < n / 32; ++w)
                    b.warp_bar.push_back(std::make_unique<std::barrier<>>(32));
                b.warp_buf.assign(n, 0);
                emu_block = &b;
                p.job = &f;
                p.grid = grid;
                p.block = block;
                p.bidx = dim3{bx, by, bz};
                p.nthreads = n;
                p.start.arrive_and_wait();
                p.end.arrive_and_wait();
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
    std::vector<int> argq(n), st(rows, 0), sw(rows, 0), sp(rows, 0), since(rows, 0),
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
                search_unstructured(G, W, (const float2*)hb.data(), st.data(), minv.data(),
                                    argq.data(), rows, d);
            });
            emu_launch(D(rows), D(256), [&] {
                pick_apply_unstructured(G, W, mask, c.data(), minv.data(), argq.data(), st.data(),
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
    std::vector<int> argq(n), st(rows, 0), sw(rows, 0), sp(rows, 0), since(rows, 0),
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
        search_unstructured(G, W, (const float2*)hb.data(), st.data(), minv.data(), argq.data(),
                            rows, d);
    });
    emu_launch(D(rows), D(256), [&] {
        pick_apply_unstructured(G, W, mask, c.data(), minv.data(), argq.data(), st.data(),
                                err.data(), sw.data(), sp.data(), since.data(), need.data(), rows,
                                d, 100, 32, 1e-9, 0, picks);
    });
    return 0;
}

// The Gram helper kernel: copies the upper triangle onto the lower.
extern "C" void emu_symmetrize(float* G, int d) {
    emu_launch(D(cdiv(d, 16), cdiv(d, 16)), D(16, 16), [&] { symmetrize_upper(G, d); });
}
