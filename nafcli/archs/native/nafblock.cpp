// One NAFBlock in float32 on the CPU, in two passes over its feature maps instead of a dozen.
//
// Why: on a CPU the full-resolution levels of a NAFNet are thin (32-128 channels), and there every
// separate operation (LayerNorm, 1x1 product, depthwise 3x3, gate, residual) streams the whole map through
// memory once; the 1x1 products themselves are fast. Here each pixel goes through LayerNorm, the 1x1
// products, the gates and the residuals while it is in the registers and the L1 cache:
//
//   front: g = gate(dw3x3(conv1(LN(x))))  and the channel sums of g  (rows in a ring of three, for the 3x3)
//   back:  y = x + conv3(g * s);  out = y + conv5(gate(conv4(LN(y))))  (s: the SCA scale of each pixel)
//
// Between the two the caller computes the SCA scale s from the mean of g (global, or the TLC local means):
// that mean needs the whole of g, so it cannot be fused. Weights come folded (LayerNorm affine, beta and
// gamma), transposed (K x N, row k holds input channel k's weights) and packed (nb_pack), the maps
// channels-last (N, H, W, C).
//
// Built by nafcli/archs/native/build.py with -O3 -march=native -fopenmp; the OpenMP runtime is the one
// torch already loaded (same SONAME), so the kernels run on torch's own thread team.
#include <omp.h>
// GCC 12's _mm512_reduce_add_ps reads an undefined register on purpose; its warning is noise here
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// the box means' 8-double vectors are passed between static inline functions, whose calling convention
// never crosses a library boundary: the AVX2 build's note that it would differ is noise here
#pragma GCC diagnostic ignored "-Wpsabi"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <vector>
#include <atomic>
#include <memory>

#if defined(__AVX512F__)
#define VW 16    // floats per vector
#define NACC 24  // accumulator registers a micro-kernel may hold (32 registers)
#else
#define VW 8
#define NACC 12  // 16 registers
#endif

typedef float vf __attribute__((vector_size(VW * 4)));
typedef float vfu __attribute__((vector_size(VW * 4), aligned(4)));

static inline vf load(const float* p) { return *(const vfu*)p; }
static inline void store(float* p, vf v) { *(vfu*)p = v; }
// a true broadcast: `(vf){} + a` made GCC add 0 to a first and broadcast from a register, two uops on the
// ports the multiply-adds need (one a k-step for each of the micro-kernel's six pixels)
static inline vf splat(float a) {
#if VW == 16
    return (vf)_mm512_set1_ps(a);
#else
    return (vf)_mm256_set1_ps(a);
#endif
}

// Streaming (non-temporal) stores for the maps a pass writes when the map is far larger than the caches:
// a plain store first reads the line it writes into (the whole map comes in from memory once more only to
// be overwritten), and the map would leave the caches before the next pass reads it anyway. A map of at
// least STREAM_MIN_BYTES, on a vector boundary (torch's allocations are on 64 bytes), is streamed; smaller
// ones stay in the caches for the next pass. Measured on the Xeon (medians of 11 interleaved runs in one
// process, front / back pass, ms): 32 x 1056^2 (143 MB) 30.5 / 37.8 -> 27.4 / 36.0, 64 x 528^2 (71 MB)
// 25.7 / 37.4 -> 22.6 / 34.7, 128 x 264^2 (36 MB) 20.2 / 31.2 -> 18.5 / 30.8; 256 x 132^2 (18 MB) no change.
// The values stored are the same; each thread fences its streamed stores before the pass ends.
#ifndef NB_STREAM_MIN_BYTES
#define NB_STREAM_MIN_BYTES (int64_t(32) << 20)  // a test build streams every map (0)
#endif
constexpr int64_t STREAM_MIN_BYTES = NB_STREAM_MIN_BYTES;
static inline bool streamed(const float* p, int64_t floats) {
    return floats * (int64_t)sizeof(float) >= STREAM_MIN_BYTES && (uintptr_t)p % (VW * sizeof(float)) == 0;
}
template <bool STREAM>
static inline void store_map(float* p, vf v) {
    if constexpr (STREAM) {
#if VW == 16
        _mm512_stream_ps(p, (__m512)v);
#else
        _mm256_stream_ps(p, (__m256)v);
#endif
    } else {
        store(p, v);
    }
}

// a zeroed float buffer on a 64-byte boundary: vector loads that straddle two cache lines cost double
struct Buffer {
    float* data;
    // zeroed unless the caller overwrites every float first (a packed weight: up to 8 MB a call)
    explicit Buffer(size_t floats, bool zeroed = true) {
        size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
        data = static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64));
        if (data && zeroed) std::memset(data, 0, bytes);
    }
    ~Buffer() { std::free(data); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

static inline float hsum(vf v) {
#if VW == 16
    return _mm512_reduce_add_ps((__m512)v);
#else
    __m128 lo = _mm256_castps256_ps128((__m256)v), hi = _mm256_extractf128_ps((__m256)v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
#endif
}

//: pixels per micro-kernel call
constexpr int P = 6;

// the widest chunk of columns (in vectors) that divides the columns and whose P x chunk accumulators fit
static constexpr int chunk_vectors(int nvt) {
    for (int v = NACC / P; v > 1; --v)
        if (nvt % v == 0) return v;
    return 1;
}

// out[p][n0 ..] (+)= a[p][k0 .. k0 + KC] @ bt[k0 .. k0 + KC, n0 ..] for P pixels (rows K floats apart) and
// NV vectors of columns, starting from the bias when FIRST, else from what out holds (the sums of the
// rows of bt before k0, stored and loaded back exactly: the same sums in the same order as one pass);
// pt: the packed panel of those columns from row k0 on (see pack)
//
// Written with the vector intrinsics' register type (vr), not the generic vector type: with the generic
// type GCC built the accumulators in a stack array (in 256-bit halves, as its tuning for these CPUs
// prefers) and loaded them back as whole registers, a failed store forwarding for each: ~9 % of the
// micro-kernel's samples on the Xeon sat on that one reload.
#if VW == 16
typedef __m512 vr;
static inline vr vload(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, vr v) { _mm512_storeu_ps(p, v); }
static inline vr vfma(vr a, vr b, vr c) { return _mm512_fmadd_ps(a, b, c); }
static inline vr vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
#else
typedef __m256 vr;
static inline vr vload(const float* p) { return _mm256_loadu_ps(p); }
static inline void vstore(float* p, vr v) { _mm256_storeu_ps(p, v); }
static inline vr vfma(vr a, vr b, vr c) { return _mm256_fmadd_ps(a, b, c); }
static inline vr vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
#endif
// With ADD (on the last block of K only), ``add`` (rows N floats apart, as out) is added to the finished
// sums before they are stored: the residual sums of the back pass, without a pass of their own over the
// stage buffers. STREAM stores the result with streaming stores (a large map: see streamed()).
template <int KC, int K, int N, int NV, bool FIRST, bool ADD = false, bool STREAM = false>
static inline void micro(const float* a, const float* pt, const float* bias, float* out, int n0,
                         const float* add = nullptr) {
    vr acc[P][NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
        if constexpr (FIRST) {
            const vr b = vload(bias + n0 + v * VW);
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) acc[p][v] = b;
        } else {
#pragma GCC unroll 8
            for (int p = 0; p < P; ++p) acc[p][v] = vload(out + p * N + n0 + v * VW);
        }
    }
    for (int k = 0; k < KC; ++k) {
        vr b[NV];
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) b[v] = vload(pt + k * NV * VW + v * VW);
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) {
            const vr x = vbroadcast(a + p * K + k);
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) acc[p][v] = vfma(x, b[v], acc[p][v]);
        }
    }
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) {
            vr r = acc[p][v];
            if constexpr (ADD) r = r + vload(add + p * N + n0 + v * VW);
            store_map<STREAM>(out + p * N + n0 + v * VW, (vf)r);
        }
}

// A K x N weight (row k: input channel k) as gemm reads it: the column chunks one after the other, each K
// rows of its NV vectors. Row by row, a K x N matrix puts row k + 1 N floats after row k, and with N a
// multiple of 1024 bytes the rows of a chunk fall into a few of the L1 cache's sets and evict each other;
// packed, a chunk is one contiguous run. The same products in the same order: the same results.
//
// Packed once, when the caller prepares a block's weights (nb_pack), not at each call of a kernel: packing
// a 256-channel block's four products (1.5 MB, from memory: 29 such blocks do not fit the caches) took
// 0.53 ms on one thread while the other waited, ~1.4 % of the block (the Zen 5 EPYC). Every kernel below
// takes its weights packed.
static void pack(int k, int n, const float* bt, float* out) {
    const int w = chunk_vectors(n / VW) * VW;
    for (int n0 = 0; n0 < n; n0 += w)
        for (int r = 0; r < k; ++r)
            std::memcpy(out + (int64_t)n0 * k + (int64_t)r * w, bt + (int64_t)r * n + n0, sizeof(float) * w);
}

// rows of a packed panel a micro-kernel call takes: a panel of at most 32 KB stays in the L1 cache while
// the call runs over every pixel of the block (a 256 x 64 panel, 64 KB, streamed from L2 for each six
// pixels)
constexpr int PANEL_BYTES = 32 * 1024;
static constexpr int k_block(int k, int w) {
    int kc = k;
    while (kc * w * (int)sizeof(float) > PANEL_BYTES && kc % 2 == 0) kc /= 2;
    return kc;
}

// out (R x N) = a (R x K) @ bt (K x N) + bias, R a multiple of P, bt packed (pack). Column chunks outside,
// then blocks of K, pixels inside: a block of a chunk of the weights stays in the L1 cache for all R pixels.
// With ADD, out = a @ bt + bias + add (add: R x N, added to each finished sum, see micro); STREAM: out is
// written with streaming stores where K is one block (the partial sums of a blocked K are read back, so
// those stay plain stores).
template <int K, int N, bool ADD = false, bool STREAM = false>
static void gemm(const float* a, int r, const float* pt, const float* bias, float* out, const float* add = nullptr) {
    constexpr int NV = chunk_vectors(N / VW), W = NV * VW, KC = k_block(K, W);
    for (int n0 = 0; n0 < N; n0 += W) {
        const float* chunk = pt + n0 * K;
        for (int p = 0; p < r; p += P)
            micro<KC, K, N, NV, true, ADD && KC == K, STREAM && KC == K>(a + p * K, chunk, bias, out + p * N, n0,
                                                                         ADD ? add + p * N : nullptr);
        for (int k0 = KC; k0 < K; k0 += KC) {
            const bool last = k0 + KC >= K;
            for (int p = 0; p < r; p += P) {
                if (ADD && last)
                    micro<KC, K, N, NV, false, true>(a + p * K + k0, chunk + k0 * W, bias, out + p * N, n0,
                                                     add + p * N);
                else
                    micro<KC, K, N, NV, false>(a + p * K + k0, chunk + k0 * W, bias, out + p * N, n0);
            }
        }
    }
}

// the horizontal sums of VW vectors, one a lane: lane p of the result is the sum of v[p]'s lanes. A tree of
// in-lane shuffles and adds, so a group of pixels pays a few operations each instead of a reduction each;
// lane p only ever adds v[p]'s own lanes, in an order that does not depend on the other vectors.
static inline vf sums_of(const vf* v) {
#if VW == 16
    __m512 a[8], b[4];
    for (int i = 0; i < 8; ++i) {
        const __m512 x = (__m512)v[2 * i], y = (__m512)v[2 * i + 1];
        a[i] = _mm512_add_ps(_mm512_unpacklo_ps(x, y), _mm512_unpackhi_ps(x, y));
    }
    for (int i = 0; i < 4; ++i)
        b[i] = _mm512_add_ps(_mm512_shuffle_ps(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_ps(a[2 * i], a[2 * i + 1], 0xEE));
    const __m512 d01 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], 0x44), _mm512_shuffle_f32x4(b[0], b[1], 0xEE));
    const __m512 d23 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], 0x44), _mm512_shuffle_f32x4(b[2], b[3], 0xEE));
    return (vf)_mm512_add_ps(_mm512_shuffle_f32x4(d01, d23, 0x88), _mm512_shuffle_f32x4(d01, d23, 0xDD));
#else
    __m256 a[4], b[2];
    for (int i = 0; i < 4; ++i) {
        const __m256 x = (__m256)v[2 * i], y = (__m256)v[2 * i + 1];
        a[i] = _mm256_add_ps(_mm256_unpacklo_ps(x, y), _mm256_unpackhi_ps(x, y));
    }
    for (int i = 0; i < 2; ++i)
        b[i] = _mm256_add_ps(_mm256_shuffle_ps(a[2 * i], a[2 * i + 1], 0x44),
                             _mm256_shuffle_ps(a[2 * i], a[2 * i + 1], 0xEE));
    return (vf)_mm256_add_ps(_mm256_permute2f128_ps(b[0], b[1], 0x20), _mm256_permute2f128_ps(b[0], b[1], 0x31));
#endif
}

// LayerNorm over the C channels of each of n pixels, no affine (it is folded into the next product): the
// mean, then the mean of the centred squares (two passes, as torch computes it). VW pixels at a time: each
// pixel's channel sums become one lane of a vector (sums_of), so the means, variances and 1/sqrt are
// vector operations rather than a horizontal reduction and a scalar square root a pixel. On the Xeon,
// level-1 passes (32 x 1056^2, ms, medians of four interleaved runs): front 38.5 -> 36.6, back 44.4 ->
// 42.9; 64 channels unchanged.
template <int C>
static void layer_norm_rows(const float* x, int n, float* t, float eps) {
    for (int p0 = 0; p0 < n; p0 += VW) {
        const int g = n - p0 < VW ? n - p0 : VW;
        const float* xs = x + p0 * C;
        vf acc[VW];
        for (int p = 0; p < VW; ++p) {
            vf s = splat(0.f);
            if (p < g)
                for (int c = 0; c < C; c += VW) s += load(xs + p * C + c);
            acc[p] = s;
        }
        alignas(64) float mean[VW], rstd[VW];
        store(mean, sums_of(acc) / splat((float)C));
        for (int p = 0; p < VW; ++p) {
            vf q = splat(0.f);
            if (p < g) {
                const vf m = splat(mean[p]);
                for (int c = 0; c < C; c += VW) {
                    const vf d = load(xs + p * C + c) - m;
                    q += d * d;
                }
            }
            acc[p] = q;
        }
        const vf var = sums_of(acc) / splat((float)C) + splat(eps);
#if VW == 16
        store(rstd, splat(1.f) / (vf)_mm512_sqrt_ps((__m512)var));
#else
        store(rstd, splat(1.f) / (vf)_mm256_sqrt_ps((__m256)var));
#endif
        for (int p = 0; p < g; ++p) {
            const vf m = splat(mean[p]), r = splat(rstd[p]);
            for (int c = 0; c < C; c += VW) store(t + (p0 + p) * C + c, (load(xs + p * C + c) - m) * r);
        }
    }
}

// pixels a thread takes through all stages at once. At 32 channels two micro-kernels' worth (every stage's
// buffer in the L1 cache): a 30-pixel block made the level-1 back pass of a 1024x1024 tile 63 ms instead
// of 53 ms on the Xeon, 24 pixels 41 ms instead of 30 on the Zen 5 EPYC; there 12 pixels beat 6 (32 x
// 1056^2, ms, medians of 15 alternating in one process, two series: front 22.5 / 21.0 -> 21.4 / 20.0, back
// 30.2 / 29.7 -> 29.2 / 29.4; the LayerNorm's groups of a vector's width of pixels are less empty) and 18
// lost (back 30.4 -> 32.7). Not measured on the Xeon, where 6 was chosen. Wider blocks take as many
// pixels as fit half of a core's L2 cache in stage buffers (6C floats a pixel; 12-96 pixels, a multiple
// of P): each weight panel is then used for that many pixels before the next is loaded, and a block's
// weights (up to 6 MB at 512 channels, more than an L2) are streamed once per block of pixels. Measured
// on the Xeon (2 MB L2; front + back, ms, stage buffers of 192 KB / 512 KB / 1 MB): 128 x 264^2
// 51.6 / 51.6 / 50.2, 256 x 132^2 51.0 / 48.8 / 46.1, 512 x 66^2 71.0 / 56.7 / 47.4. The pixel count
// changes no result: each pixel's sums run in the same order whatever the block.
#ifndef NB_L2_BYTES
#define NB_L2_BYTES (1024 * 1024)  // build.py passes the machine's
#endif
constexpr int BLOCK_BYTES = NB_L2_BYTES / 2;
template <int C>
constexpr int block_pixels() {
    if (C <= 32) return 2 * P;
    int r = BLOCK_BYTES / (6 * C * (int)sizeof(float)) / P * P;
    return r < 2 * P ? 2 * P : (r > 16 * P ? 16 * P : r);
}

// DYNAMIC_ROWS: the passes hand their rows (or blocks of pixels) to the threads one at a time, not in
// equal shares: the two vCPUs of a cloud machine do not run at the same speed from one moment to the next
// (a neighbour on the host, the clock), and with equal shares the faster thread waited at the end of each
// pass. On the 2-core Zen 5 EPYC a profile of NAFNet-GoPro-width32 found the threads waiting ~7 % of the
// time (the main one ~2 ms at the end of each 256-channel back pass); a 1056-px tile 1.699 -> 1.663 s
// (medians of 9, alternating in one process) with the back pass alone handed out so. Each row is computed
// the same way whichever thread takes it: the same bytes.
//
// Software prefetch of the maps a pass streams, PREFETCH_PIXELS pixels ahead, for maps of up to
// PREFETCH_CHANNELS channels: the hardware's stream prefetchers bring them into the L2 cache, but at 32
// channels a block of pixels (six) is too little arithmetic to hide the L1 misses that follow. Measured on
// the Xeon (medians of 11 interleaved runs in one process, ms): 32 x 1056^2 back pass 39.1-40.1 ->
// 36.5-37.4, front 33.3-34.4 -> 32.5-33.4 (32 pixels ahead; 128 and 256 gained less). At 64 channels
// (96-pixel blocks) it lost ~1 ms a pass there, from 128 on nothing; on the Zen 5 EPYC (1 MB L2) it gains
// at 64 and 128 channels (medians of 15, alternating in one process, ms, 32 / 128 channels: 64 x 528^2
// front 17.2-18.3 -> 16.0-17.3, back 28.3-32.3 -> 27.1-29.3; 128 x 264^2 back 25.4-26.6 -> 24.8-25.5;
// 256 x 132^2 no change), ~10 ms a tile of NAFNet-GoPro-width32, so build.py builds for 128 on AMD CPUs
// and 32 elsewhere (the same results either way: a prefetch changes no value). A distance of one block
// (96 pixels) instead of 32 changed nothing. Prefetching past the end of a map is harmless (a prefetch
// never faults), so the front's reads are not clipped.
#ifndef NB_PREFETCH_CHANNELS
#define NB_PREFETCH_CHANNELS 32  // build.py passes the rule's
#endif
constexpr int PREFETCH_PIXELS = 32, PREFETCH_CHANNELS = NB_PREFETCH_CHANNELS;
template <int C, int HINT>
static inline void prefetch(const float* p, int64_t pixels) {
    for (int64_t e = 0; e < pixels * C; e += 64 / sizeof(float)) _mm_prefetch((const char*)(p + e), (_mm_hint)HINT);
}

// u = conv1(LN(x)) for the w pixels of one row, written to u[1 .. w] (2C floats a pixel)
template <int C>
static void conv1_row(const float* x, int64_t w, const float* w1t, const float* b1, float eps, float* u,
                      float* t, float* o) {
    constexpr int R = block_pixels<C>();
    for (int64_t j = 0; j < w; j += R) {
        int n = (int)((w - j) < R ? (w - j) : R), r = (n + P - 1) / P * P;
        if constexpr (C <= PREFETCH_CHANNELS) prefetch<C, _MM_HINT_T0>(x + (j + PREFETCH_PIXELS) * C, n);
        layer_norm_rows<C>(x + j * C, n, t, eps);
        if (r == n) {  // whole groups of P pixels: straight into the row (the rest would run past its end)
            gemm<C, 2 * C>(t, r, w1t, b1, u + (j + 1) * 2 * C);
            continue;
        }
        std::memset(t + n * C, 0, sizeof(float) * (r - n) * C);
        gemm<C, 2 * C>(t, r, w1t, b1, o);
        std::memcpy(u + (j + 1) * 2 * C, o, sizeof(float) * n * 2 * C);
    }
}

// g = gate(dw3x3(u) + dwb) for one output row; up/mid/down are u rows (w + 2 pixels, zero at both ends);
// adds the row's channel sums to sum
template <int C, bool STREAM>
static void dw_gate_row(const float* up, const float* mid, const float* down, int64_t w, const float* dwt,
                        const float* dwb, float* g, double* sum) {
    const float* src[3] = {up, mid, down};
    for (int c = 0; c < C; c += VW) {
        vf ka[9], kb[9];
        for (int i = 0; i < 9; ++i) {
            ka[i] = load(dwt + i * 2 * C + c);
            kb[i] = load(dwt + i * 2 * C + C + c);
        }
        vf ba = load(dwb + c), bb = load(dwb + C + c), rs = splat(0.f);
        for (int64_t j = 0; j < w; ++j) {
            vf a = ba, b = bb;
            for (int dy = 0; dy < 3; ++dy) {
                const float* s = src[dy] + j * 2 * C + c;  // padded pixel j is image pixel j - 1
                for (int dx = 0; dx < 3; ++dx) {
                    a += load(s + dx * 2 * C) * ka[dy * 3 + dx];
                    b += load(s + dx * 2 * C + C) * kb[dy * 3 + dx];
                }
            }
            vf gv = a * b;
            store_map<STREAM>(g + j * C + c, gv);
            rs += gv;
        }
        for (int i = 0; i < VW; ++i) sum[c + i] += rs[i];
    }
}

// sums[img][c] = the rows' sums of image img added in row order (rowsums: n x h x c)
static void add_rows(const double* rowsums, int64_t n, int64_t h, int c, double* sums) {
    for (int64_t img = 0; img < n; ++img)
        for (int ch = 0; ch < c; ++ch) {
            double s = 0;
            for (int64_t r = 0; r < h; ++r) s += rowsums[(img * h + r) * c + ch];
            sums[img * c + ch] = s;
        }
}

// The rows [lo, hi) of a map that one thread has yet to make, as one atomic word (hi << 32 | lo): the front's
// ring path gives each thread an equal share of consecutive rows (each u row serves three rows of g from
// the thread's ring, in its L2 cache), and a thread that has finished its own takes the last half of what
// another has left (take_last_half), whose rows it makes through its own ring (two u rows more). The two
// vCPUs of a cloud machine do not keep the same speed (see DYNAMIC_ROWS): with fixed shares the main thread
// waited ~1.9 ms at the end of each 256-channel front of NAFNet-GoPro-width32 on the 2-core Zen 5 EPYC.
// Each row is computed the same way whichever thread makes it: the same bytes.
typedef std::atomic<uint64_t> RowSpan;
static inline uint64_t span_of(int64_t lo, int64_t hi) { return uint64_t(hi) << 32 | uint64_t(lo); }
// the owner: the first row left, if any
static inline bool take_first(RowSpan& s, int64_t& r) {
    uint64_t cur = s.load();
    for (;;) {
        const int64_t lo = int64_t(cur & 0xffffffffu), hi = int64_t(cur >> 32);
        if (lo >= hi) return false;
        if (s.compare_exchange_weak(cur, span_of(lo + 1, hi))) {
            r = lo;
            return true;
        }
    }
}
// another thread: the last half of the rows left [a, b), when at least STEAL_MIN_ROWS are left
constexpr int64_t STEAL_MIN_ROWS = 4;
static inline bool take_last_half(RowSpan& s, int64_t& a, int64_t& b) {
    uint64_t cur = s.load();
    for (;;) {
        const int64_t lo = int64_t(cur & 0xffffffffu), hi = int64_t(cur >> 32);
        if (hi - lo < STEAL_MIN_ROWS) return false;
        const int64_t mid = hi - (hi - lo) / 2;
        if (s.compare_exchange_weak(cur, span_of(lo, mid))) {
            a = mid;
            b = hi;
            return true;
        }
    }
}

// maps of at most this many floats of u are made whole (the rows of u, then those of g, handed out one at a
// time); larger ones row by row in a ring of three rows per thread (cache-sized), each thread an equal
// share of the rows: handing those out one at a time (bands of rows through a ring the threads share) was
// 4-10 % slower at every width on the Zen 5 EPYC (the ring no longer in the L2 cache), more than the
// threads' waiting it saved
constexpr int64_t WHOLE_U_FLOATS = int64_t(4) << 20;

template <int C>
static void front(const float* x, int64_t n, int64_t h, int64_t w, const float* w1t, const float* b1,
                  const float* dwt, const float* dwb, float eps, float* g, double* sums, int nthreads) {
    constexpr int R = block_pixels<C>();
    const int64_t row = (w + 2) * 2 * C;  // one padded row of u
    // each row's channel sums apart, added in row order after: the same sums whatever the threads
    std::vector<double> rowsums((size_t)(n * h * C), 0.0);
    const bool whole = (h + 2) * row <= WHOLE_U_FLOATS;
    const auto dw_gate_g = streamed(g, n * h * w * C) ? dw_gate_row<C, true> : dw_gate_row<C, false>;
    Buffer umap(whole ? (size_t)((h + 2) * row) : 0);
    const std::unique_ptr<RowSpan[]> spans(new RowSpan[nthreads > 0 ? nthreads : 1]);
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        Buffer t((size_t)R * C), o((size_t)R * 2 * C);
        Buffer zero(whole ? 0 : (size_t)row), ring(whole ? 0 : (size_t)3 * row);
        for (int64_t img = 0; img < n; ++img) {
            const float* xi = x + img * h * w * C;
            float* gi = g + img * h * w * C;
            double* rs = rowsums.data() + img * h * C;
            if (whole) {  // rows handed out one at a time (see DYNAMIC_ROWS); each loop ends in a barrier
#pragma omp for schedule(dynamic, 1)
                for (int64_t r = 0; r < h; ++r)
                    conv1_row<C>(xi + r * w * C, w, w1t, b1, eps, umap.data + (r + 1) * row, t.data, o.data);
#pragma omp for schedule(dynamic, 1)
                for (int64_t r = 0; r < h; ++r)
                    dw_gate_g(umap.data + r * row, umap.data + (r + 1) * row, umap.data + (r + 2) * row, w, dwt,
                              dwb, gi + r * w * C, rs + r * C);
                continue;
            }
            int64_t have;  // the last u row in the ring
            auto g_row = [&](int64_t r) {
                while (have < r + 1) {
                    ++have;
                    if (have >= 0 && have < h)
                        conv1_row<C>(xi + have * w * C, w, w1t, b1, eps, ring.data + (have % 3) * row, t.data,
                                     o.data);
                }
                const float* up = r > 0 ? ring.data + ((r - 1) % 3) * row : zero.data;
                const float* down = r + 1 < h ? ring.data + ((r + 1) % 3) * row : zero.data;
                dw_gate_g(up, ring.data + (r % 3) * row, down, w, dwt, dwb, gi + r * w * C, rs + r * C);
            };
#ifdef NB_STEAL_ALL  // tests: the first thread starts with every row, the others only take from it
            const int64_t r0 = tid == 0 ? 0 : h, r1 = h;
#else
            const int64_t r0 = h * tid / nt, r1 = h * (tid + 1) / nt;
#endif
            spans[tid].store(span_of(r0, r1));
#pragma omp barrier
            have = r0 - 2;
            for (int64_t r; take_first(spans[tid], r);) g_row(r);
            // then the rows the others have not reached, half of what is left at a time (see RowSpan)
            for (int k = 1; k < nt; ++k)
                for (int64_t a, b; take_last_half(spans[(tid + k) % nt], a, b);) {
                    have = a - 2;
                    for (int64_t r = a; r < b; ++r) g_row(r);
                }
#pragma omp barrier
        }
        _mm_sfence();
    }
    add_rows(rowsums.data(), n, h, C, sums);
}

// y = x + conv3(g * s) ; out = y + conv5(gate(conv4(LN(y)))). s: n x h2 x w2 x C, the SCA scale of the
// valid TLC windows; pixel (i, j) takes s[clamp(i - top)][clamp(j - left)] (replicate padding); a global
// SCA is h2 = w2 = 1.
template <int C, bool STREAM>
static void back_pass(const float* x, const float* g, int64_t n, int64_t h, int64_t w, const float* smap, int64_t h2,
                      int64_t w2, int64_t top, int64_t left, const float* w3t, const float* b3, const float* w4t,
                      const float* b4, const float* w5t, const float* b5, float eps, float* out, int nthreads) {
    constexpr int R = block_pixels<C>();
    const int64_t rows = n * h;
#pragma omp parallel num_threads(nthreads)
    {
        Buffer buf((size_t)R * 6 * C);
        float *a = buf.data, *y = a + R * C, *t = y + R * C, *u = t + R * C;  // u: 2C a pixel
        float* o = u + R * 2 * C;
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t q = 0; q < rows; ++q) {  // rows handed out one at a time (see DYNAMIC_ROWS)
            const int64_t img = q / h;
            int64_t si = q % h - top;
            si = si < 0 ? 0 : (si >= h2 ? h2 - 1 : si);
            const float* srow = smap + (img * h2 + si) * w2 * C;
            const float* xr = x + q * w * C;
            const float* gr = g + q * w * C;
            float* outr = out + q * w * C;
            for (int64_t j = 0; j < w; j += R) {
                const int np = (int)((w - j) < R ? (w - j) : R), r = (np + P - 1) / P * P;
                if constexpr (C <= PREFETCH_CHANNELS) {
                    const int64_t ahead = std::min<int64_t>(np, rows * w - (q * w + j + PREFETCH_PIXELS));
                    prefetch<C, _MM_HINT_T0>(xr + (j + PREFETCH_PIXELS) * C, ahead);
                    prefetch<C, _MM_HINT_T0>(gr + (j + PREFETCH_PIXELS) * C, ahead);
                    if constexpr (!STREAM) prefetch<C, _MM_HINT_ET0>(outr + (j + PREFETCH_PIXELS) * C, ahead);
                }
                for (int p = 0; p < np; ++p) {
                    int64_t sj = j + p - left;
                    sj = sj < 0 ? 0 : (sj >= w2 ? w2 - 1 : sj);
                    const float* sp = srow + sj * C;
                    if constexpr (C > PREFETCH_CHANNELS) {
                        // x for conv3's residual, into the L2 cache while the block's products run: that
                        // residual is added in the products' last stores, and there each of its loads missed
                        // (the ADD micro-kernel took 29 % more samples than the same product's first half at
                        // 256 channels). Back pass, Zen 5 EPYC, medians of 15 alternating in one process,
                        // ms: 256 x 132^2 22.5-24.1 -> 22.1-23.7, 512 x 66^2 22.2-24.0 -> 21.9-23.6
                        for (int c = 0; c < C; c += 64 / sizeof(float))
                            _mm_prefetch((const char*)(xr + (j + p) * C + c), _MM_HINT_T1);
                    }
                    for (int c = 0; c < C; c += VW) store(a + p * C + c, load(gr + (j + p) * C + c) * load(sp + c));
                }
                if (r > np) std::memset(a + np * C, 0, sizeof(float) * (r - np) * C);
                if (r == np) {  // whole groups of P pixels: the residual sums in the products' last stores
                    gemm<C, C, true>(a, r, w3t, b3, y, xr + j * C);
                } else {
                    gemm<C, C>(a, r, w3t, b3, y);
                    for (int p = 0; p < np; ++p)
                        for (int c = 0; c < C; c += VW)
                            store(y + p * C + c, load(y + p * C + c) + load(xr + (j + p) * C + c));
                }
                layer_norm_rows<C>(y, r, t, eps);
                gemm<C, 2 * C>(t, r, w4t, b4, u);
                for (int p = 0; p < r; ++p)
                    for (int c = 0; c < C; c += VW)
                        store(a + p * C + c, load(u + p * 2 * C + c) * load(u + p * 2 * C + C + c));
                if (r == np) {
                    gemm<C, C, true, STREAM>(a, r, w5t, b5, outr + j * C, y);
                } else {
                    gemm<C, C>(a, r, w5t, b5, o);
                    for (int p = 0; p < np; ++p)
                        for (int c = 0; c < C; c += VW)
                            store_map<STREAM>(outr + (j + p) * C + c, load(o + p * C + c) + load(y + p * C + c));
                }
            }
        }
        if constexpr (STREAM) _mm_sfence();
    }
}

template <int C>
static void back(const float* x, const float* g, int64_t n, int64_t h, int64_t w, const float* smap, int64_t h2,
                 int64_t w2, int64_t top, int64_t left, const float* w3t, const float* b3, const float* w4t,
                 const float* b4, const float* w5t, const float* b5, float eps, float* out, int nthreads) {
    const auto pass = streamed(out, n * h * w * C) ? back_pass<C, true> : back_pass<C, false>;
    pass(x, g, n, h, w, smap, h2, w2, top, left, w3t, b3, w4t, b4, w5t, b5, eps, out, nthreads);
}

// The pieces of a block that are not 1x1 products, for the blocks whose products oneDNN runs (256 and
// more channels, or small maps): a LayerNorm over each pixel's channels, and the depthwise 3x3 with the
// gate and the channel sums, each in one pass.
template <int C>
static void layer_norm_map(const float* x, int64_t pixels, float eps, float* out, int nthreads) {
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        constexpr int64_t CHUNK = 1024;
        for (int64_t p = pixels * tid / nt, end = pixels * (tid + 1) / nt; p < end; p += CHUNK)
            layer_norm_rows<C>(x + p * C, (int)(end - p < CHUNK ? end - p : CHUNK), out + p * C, eps);
    }
}

// g = gate(dw3x3(u) + dwb) on a whole map u (N, H, W, 2C), zero padding; the rows go through a ring of
// three padded rows per thread
template <int C>
static void dw_gate(const float* u, int64_t n, int64_t h, int64_t w, const float* dwt, const float* dwb, float* g,
                    double* sums, int nthreads) {
    const int64_t row = (w + 2) * 2 * C, urow = w * 2 * C;
    std::vector<double> rowsums((size_t)(n * h * C), 0.0);
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        Buffer ring((size_t)3 * row), zero((size_t)row);
        for (int64_t img = 0; img < n; ++img) {
            const float* ui = u + img * h * urow;
            double* rs = rowsums.data() + img * h * C;
            const int64_t r0 = h * tid / nt, r1 = h * (tid + 1) / nt;
            int64_t have = r0 - 2;
            for (int64_t r = r0; r < r1; ++r) {
                while (have < r + 1) {
                    ++have;
                    if (have >= 0 && have < h)
                        std::memcpy(ring.data + (have % 3) * row + 2 * C, ui + have * urow, sizeof(float) * urow);
                }
                const float* up = r > 0 ? ring.data + ((r - 1) % 3) * row : zero.data;
                const float* down = r + 1 < h ? ring.data + ((r + 1) % 3) * row : zero.data;
                dw_gate_row<C, false>(up, ring.data + (r % 3) * row, down, w, dwt, dwb, g + (img * h + r) * w * C,
                               rs + r * C);
            }
        }
    }
    add_rows(rowsums.data(), n, h, C, sums);
}

// out (rows x N) = a (rows x K) @ wt (K x N, packed) + bias: a 1x1 convolution outside the blocks (the decoder's
// up-sampling products, K -> 2K), where oneDNN's product rounds differently with one thread and with two on
// some CPUs (256 -> 512 on the Zen 5 EPYC) and a one-thread Ray worker must write what a two-thread run
// writes. Blocks of 16 micro-kernel groups a thread, the last group zero-padded; each row is computed the
// same way whatever the number of threads.
template <int K, int N>
static void linear(const float* a, int64_t rows, const float* wt, const float* bias, float* out, int nthreads) {
    constexpr int64_t GROUPS = 16;
    const int64_t full = rows / P, blocks = (full + GROUPS - 1) / GROUPS;
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t q = 0; q < blocks; ++q) {  // handed out one at a time (see DYNAMIC_ROWS)
            const int64_t g0 = q * GROUPS, g1 = g0 + GROUPS < full ? g0 + GROUPS : full;
            gemm<K, N>(a + g0 * P * K, (int)((g1 - g0) * P), wt, bias, out + g0 * P * N);
        }
        if (tid == nt - 1 && rows > full * P) {
            const int n = (int)(rows - full * P);
            Buffer ta((size_t)P * K), to((size_t)P * N);
            std::memcpy(ta.data, a + full * P * K, sizeof(float) * n * K);
            gemm<K, N>(ta.data, P, wt, bias, to.data);
            std::memcpy(out + full * P * N, to.data, sizeof(float) * n * N);
        }
    }
}

// out (N, H/2, W/2, 2C) = the 2x2 stride-2 convolution of x (N, H, W, C), H and W even: the encoder's
// down-sampling. Each output pixel's input row is its 2x2 patch, the top pair of pixels then the bottom pair
// (4C floats, k = dy * 2C + dx * C + c; wt is 4C x 2C in that order, packed), gathered a block of pixels at a time
// and multiplied in the micro-kernel. oneDNN's 256 -> 512 down-sampling rounds differently with one thread
// and with two on the Xeon (on an 8 x 10 map); here each pixel is computed the same way whatever the
// threads.
template <int C>
static void down(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* bias, float* out,
                 int nthreads) {
    constexpr int K = 4 * C, N = 2 * C, R = 16 * P;
    const int64_t h2 = h / 2, w2 = w / 2, rows = n * h2;
#pragma omp parallel num_threads(nthreads)
    {
        Buffer a((size_t)R * K), o((size_t)R * N);
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t q = 0; q < rows; ++q) {  // rows handed out one at a time (see DYNAMIC_ROWS)
            const float* top = x + (q / h2 * h + q % h2 * 2) * w * C;  // input row 2i of image q / h2
            for (int64_t j = 0; j < w2; j += R) {
                const int np = (int)((w2 - j) < R ? (w2 - j) : R), r = (np + P - 1) / P * P;
                for (int p = 0; p < np; ++p) {
                    std::memcpy(a.data + p * K, top + (j + p) * 2 * C, sizeof(float) * 2 * C);
                    std::memcpy(a.data + p * K + 2 * C, top + w * C + (j + p) * 2 * C, sizeof(float) * 2 * C);
                }
                if (r == np) {  // whole groups of P pixels: straight into the map
                    gemm<K, N>(a.data, r, wt, bias, out + (q * w2 + j) * N);
                    continue;
                }
                std::memset(a.data + np * K, 0, sizeof(float) * (r - np) * K);
                gemm<K, N>(a.data, r, wt, bias, o.data);
                std::memcpy(out + (q * w2 + j) * N, o.data, sizeof(float) * np * N);
            }
        }
    }
}

// out (N, H, W, 3) = conv3x3(x (N, H, W, C), zero padding) + bias + res (N, H, W, 3): a NAFNet's ending
// convolution back to the image's three channels, and its global residual. oneDNN runs this thin product
// (27 multiply-adds of C channels a pixel, three outputs) at a fifth of its speed on wide ones: 35 ms on a
// 1056 x 1056 x 32 map of the Xeon. Here each pixel's three sums run over the channels in vectors (wt:
// 3 x 9 x C, the taps of output o in row order), then one horizontal sum each.
//
// Inside a row, VW pixels at a time: four pixels share each load of the weights and have twelve chains of
// multiply-adds in flight (one pixel at a time had three, each 18 deep at 32 channels: their latency bound
// it, ~75 cycles a pixel on the Zen 5 EPYC), the VW pixels' horizontal sums are one tree (sums_of), and
// the row below, which comes from memory (the last decoder block streamed it out of the caches), is
// prefetched four groups ahead. One thread, ns a pixel, one pixel at a time / so: 128^2 (in the caches)
// 18.2 / 12.3, 1056^2 23.0 / 13.2; two threads, 1056^2, ms: 13.2 / 7.2. The two border pixels of a row and
// the last ones short of VW go one at a time. Each lane sums in the same order either way, and every pixel
// is computed the same way whatever the threads.
template <int C>
static void ending(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* bias,
                   const float* res, float* out, int nthreads) {
    constexpr int K = 3, G = 4;  // outputs; pixels sharing a load of the weights
    const Buffer zero((size_t)w * C);
    const int64_t rows = n * h;
#pragma omp parallel num_threads(nthreads)
    {
        // equal shares of consecutive rows: each input row is read for three output rows, from the cache
        // when one thread takes them all
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        for (int64_t q = rows * tid / nt; q < rows * (tid + 1) / nt; ++q) {
            const int64_t r = q % h;
            const float* src[3] = {r > 0 ? x + (q - 1) * w * C : zero.data, x + q * w * C,
                                   r + 1 < h ? x + (q + 1) * w * C : zero.data};
            const auto one = [&](int64_t j) {
                vf acc[K];
                for (int o = 0; o < K; ++o) acc[o] = splat(0.f);
                for (int dy = 0; dy < 3; ++dy)
                    for (int dx = 0; dx < 3; ++dx) {
                        const int64_t jj = j + dx - 1;
                        if (jj < 0 || jj >= w) continue;
                        const float* v = src[dy] + jj * C;
                        const float* k = wt + (dy * 3 + dx) * C;
                        for (int c = 0; c < C; c += VW) {
                            const vf a = load(v + c);
                            for (int o = 0; o < K; ++o) acc[o] += a * load(k + o * 9 * C + c);
                        }
                    }
                const int64_t at = (q * w + j) * K;
                for (int o = 0; o < K; ++o) out[at + o] = (hsum(acc[o]) + bias[o]) + res[at + o];
            };
            if (w > 0) one(0);
            int64_t j = 1;
            for (; j + VW <= w - 1; j += VW) {  // VW pixels whose every tap is inside the row
                const float* ahead = src[2] + std::min(j + 4 * VW, w - VW) * C;
                for (int b = 0; b < VW * C; b += 64 / (int)sizeof(float))
                    _mm_prefetch((const char*)(ahead + b), _MM_HINT_T0);
                vf sum_of[K][VW];
                for (int p0 = 0; p0 < VW; p0 += G) {
                    vr acc[G][K];
#pragma GCC unroll 16
                    for (int p = 0; p < G; ++p)
#pragma GCC unroll 16
                        for (int o = 0; o < K; ++o) acc[p][o] = (vr)splat(0.f);
#pragma GCC unroll 16
                    for (int t = 0; t < 9; ++t) {
                        const float* v = src[t / 3] + (j + p0 + t % 3 - 1) * C;
                        const float* k = wt + t * C;
#pragma GCC unroll 16
                        for (int c = 0; c < C; c += VW) {
                            vr wk[K];
#pragma GCC unroll 16
                            for (int o = 0; o < K; ++o) wk[o] = vload(k + o * 9 * C + c);
#pragma GCC unroll 16
                            for (int p = 0; p < G; ++p) {
                                const vr a = vload(v + p * C + c);
#pragma GCC unroll 16
                                for (int o = 0; o < K; ++o) acc[p][o] = vfma(a, wk[o], acc[p][o]);
                            }
                        }
                    }
#pragma GCC unroll 16
                    for (int p = 0; p < G; ++p)
#pragma GCC unroll 16
                        for (int o = 0; o < K; ++o) sum_of[o][p0 + p] = (vf)acc[p][o];
                }
                float sums[K][VW];
                for (int o = 0; o < K; ++o) store(sums[o], sums_of(sum_of[o]));
                const int64_t at = (q * w + j) * K;
                for (int p = 0; p < VW; ++p)
                    for (int o = 0; o < K; ++o) out[at + p * K + o] = (sums[o][p] + bias[o]) + res[at + p * K + o];
            }
            for (; j < w; ++j) one(j);
        }
    }
}

// out (N, 2H, 2W, K/2) = pixel_shuffle(conv1x1(x), 2) + skip: a decoder level's up-sampling product
// (x: N, H, W, K; no bias), its pixel shuffle and the skip connection in one pass: the product's 2K
// outputs of a pixel are the four K/2-channel pixels of its 2 x 2 patch, written in place beside the
// skip's. wt: K x 2K (packed) with the columns in patch order (column (2a + b) * K/2 + c is the shuffle's channel
// 4c + 2a + b). Each pixel computed the same way whatever the threads. A large output is streamed
// (streamed()): 64 -> 32 channels on 528^2 in 27.3-29.5 -> 23.6-23.9 ms, 128 -> 64 on 264^2 in 20.5-20.9
// -> 18.6-18.7 ms (the Xeon).
template <int K, bool STREAM>
static void up_skip_pass(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* skip,
                         float* out, int nthreads) {
    constexpr int N = 2 * K, H = K / 2, R = 16 * P;
    const Buffer zero((size_t)N);
    const int64_t rows = n * h, orow = 2 * w * H;  // floats in an output row
#pragma omp parallel num_threads(nthreads)
    {
        Buffer a((size_t)R * K), o((size_t)R * N);
#pragma omp for schedule(dynamic, 1) nowait
        for (int64_t q = 0; q < rows; ++q) {  // rows handed out one at a time (see DYNAMIC_ROWS)
            const int64_t top = (q / h * 2 * h + q % h * 2) * orow;  // output row 2i of image q / h
            for (int64_t j = 0; j < w; j += R) {
                const int np = (int)((w - j) < R ? (w - j) : R), r = (np + P - 1) / P * P;
                const float* src = x + (q * w + j) * K;
                if (r > np) {
                    std::memcpy(a.data, src, sizeof(float) * np * K);
                    std::memset(a.data + np * K, 0, sizeof(float) * (r - np) * K);
                    src = a.data;
                }
                gemm<K, N>(src, r, wt, zero.data, o.data);
                for (int p = 0; p < np; ++p)
                    for (int ab = 0; ab < 4; ++ab) {
                        const int64_t at = top + (ab / 2) * orow + (2 * (j + p) + ab % 2) * H;
                        const float* op = o.data + p * N + ab * H;
                        for (int c = 0; c < H; c += VW) store_map<STREAM>(out + at + c, load(op + c) + load(skip + at + c));
                    }
            }
        }
        if constexpr (STREAM) _mm_sfence();
    }
}

template <int K>
static void up_skip(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* skip,
                    float* out, int nthreads) {
    const auto pass = streamed(out, n * h * w * 2 * K) ? up_skip_pass<K, true> : up_skip_pass<K, false>;
    pass(x, n, h, w, wt, skip, out, nthreads);
}

// The TLC box means over every full k1 x k2 window of g (N, H, W, C), stride 1, into out (N, H-k1+1,
// W-k2+1, C). Sliding sums in double, no integral image (whose running sums need float64 over a large map,
// and several passes). Down the columns first: each thread owns a contiguous share of a row's W x C values
// and moves their k1-row window a row at a time (add the row that enters, subtract the one that
// leaves), a band of rows at a time into a buffer of summed rows; then along each summed row the same way,
// a share of the band's rows each. Every value is summed in the same order whatever the number of threads,
// so the results are too. Vectors of 8 doubles throughout; the band (8 rows) stays in the L2 cache. On the
// Xeon, 2 threads, medians of 7 in one process: 32 x 1056^2 with 384-px windows 25.5 -> 19.0 ms, 256 x
// 132^2 with 48-px windows 2.41 -> 1.79 ms (before: scalar loops, 16-row bands). Splitting the channels
// between the threads instead (no band, no barrier) was faster with one thread and slower with two: at
// 32 channels each thread then reads one of a pixel's two cache lines, and the prefetchers fetch both.
// The window moves up the map, from the last rows to the first: the front pass has just written g top to
// bottom, so its last rows are the ones still in the L3 cache (at 256 channels on 132^2, 18 MB of g and 18
// of x went through a 32 MB cache), and the back pass, which reads g top to bottom, then finds its first
// rows there too. NAFNet-GoPro-width32 on the Zen 5 EPYC, medians of 8 alternating in one process, ms, in
// slow phases of the VM (two series): the scale at 256 channels 4.02 / 4.21 -> 3.91 / 4.06, the back pass
// after it 23.81 / 24.44 -> 23.55 / 24.11, a 1056^2 tile 1734 / 1793 -> 1712 / 1764; in a calm phase (1.62 s
// tiles) no change. The sums are the same sums taken in the other order.
typedef double vd8 __attribute__((vector_size(64)));
typedef double vd8u __attribute__((vector_size(64), aligned(8)));
typedef float vf8 __attribute__((vector_size(32)));
typedef float vf8u __attribute__((vector_size(32), aligned(4)));
#if VW == 16  // one instruction each (GCC splits the generic conversions into 256-bit halves)
static inline vd8 widen8(const float* p) { return (vd8)_mm512_cvtps_pd(_mm256_loadu_ps(p)); }
static inline void narrow8(float* p, vd8 v) { _mm256_storeu_ps(p, _mm512_cvtpd_ps((__m512d)v)); }
#else
static inline vd8 widen8(const float* p) { return __builtin_convertvector(*(const vf8u*)p, vd8); }
static inline void narrow8(float* p, vd8 v) { *(vf8u*)p = __builtin_convertvector(v, vf8); }
#endif
static inline vd8 load8(const double* p) { return *(const vd8u*)p; }
static inline void store8(double* p, vd8 v) { *(vd8u*)p = v; }

// one output row of box means from a row of column sums (w x c doubles): the k2-wide sliding sum along it
static void box_row(const double* col, int64_t c, int64_t w2, int64_t k2, double inv, float* o, double* s) {
    const int64_t cv = c / 8 * 8;
    const vd8 vinv = {inv, inv, inv, inv, inv, inv, inv, inv};
    std::fill(s, s + c, 0.0);
    for (int64_t j = 0; j < k2; ++j) {
        int64_t ch = 0;
        for (; ch < cv; ch += 8) store8(s + ch, load8(s + ch) + load8(col + j * c + ch));
        for (; ch < c; ++ch) s[ch] += col[j * c + ch];
    }
    for (int64_t j = 0; j < w2; ++j) {
        if (j > 0) {
            const double* add = col + (j + k2 - 1) * c;
            const double* sub = col + (j - 1) * c;
            int64_t ch = 0;
            for (; ch < cv; ch += 8) store8(s + ch, load8(s + ch) + (load8(add + ch) - load8(sub + ch)));
            for (; ch < c; ++ch) s[ch] += add[ch] - sub[ch];
        }
        int64_t ch = 0;
        for (; ch < cv; ch += 8) narrow8(o + j * c + ch, load8(s + ch) * vinv);
        for (; ch < c; ++ch) o[j * c + ch] = float(s[ch] * inv);
    }
}

// The vertical pass of the box means over every full k1-row window of g (see above), handing each output
// row's column sums (w x c doubles, in the shared band) to a thread's Rows::Thread, the rows of a band
// shared between the threads; what a row becomes is the Rows' business (the means, or the SCA scale).
template <class Rows>
static void box_columns(int c, const float* g, int64_t n, int64_t h, int64_t w, int64_t k1, const Rows& rows,
                        int nthreads) {
    const int64_t h2 = h - k1 + 1, row = w * c;
    constexpr int64_t BAND = 8;
    // BAND + 1 rows of column sums: row 0 holds the last row of the band before
    Buffer band_buf((size_t)((BAND + 1) * row * 2), false);
    double* band = reinterpret_cast<double*>(band_buf.data);
#pragma omp parallel num_threads(nthreads)
    {
        const int tid = omp_get_thread_num(), nt = omp_get_num_threads();
        const int64_t e0 = row / 8 * tid / nt * 8, e1 = tid + 1 == nt ? row : row / 8 * (tid + 1) / nt * 8;
        const int64_t ev = e0 + (e1 - e0) / 8 * 8;
        typename Rows::Thread emit(rows);
        for (int64_t img = 0; img < n; ++img) {
            // row r of the walk is row h-1-r of the map (up the map: see above)
            const float* gi = g + img * h * row + (h - 1) * row;
            const int64_t step = -row;
            double* acc = band;  // row 0
            // the first window's column sums, 64 columns at a time in registers down all k1 rows (the
            // same sums in the same order as row by row into the band, without its loads and stores)
            int64_t e = e0;
            for (; e + 64 <= ev; e += 64) {
                vd8 s[8] = {};
                for (int64_t r = 0; r < k1; ++r)
#pragma GCC unroll 8
                    for (int i = 0; i < 8; ++i) s[i] = s[i] + widen8(gi + r * step + e + 8 * i);
                for (int i = 0; i < 8; ++i) store8(acc + e + 8 * i, s[i]);
            }
            std::fill(acc + e, acc + e1, 0.0);
            for (int64_t r = 0; r < k1; ++r) {
                const float* in = gi + r * step;
                int64_t f = e;
                for (; f < ev; f += 8) store8(acc + f, load8(acc + f) + widen8(in + f));
                for (; f < e1; ++f) acc[f] += in[f];
            }
            for (int64_t b0 = 0; b0 < h2; b0 += BAND) {
                const int64_t b1 = b0 + BAND < h2 ? b0 + BAND : h2;
                for (int64_t i = b0; i < b1; ++i) {
                    const double* prev = band + (i - b0) * row;  // the row before (row 0: the band before's last)
                    double* col = band + (i - b0 + 1) * row;
                    if (i == 0) {
                        std::copy(prev + e0, prev + e1, col + e0);
                        continue;
                    }
                    const float* in = gi + (i + k1 - 1) * step;
                    const float* old = gi + (i - 1) * step;
                    int64_t e = e0;
                    for (; e < ev; e += 8) store8(col + e, load8(prev + e) + (widen8(in + e) - widen8(old + e)));
                    for (; e < e1; ++e) col[e] = prev[e] + (double(in[e]) - double(old[e]));
                }
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
                for (int64_t i = b0; i < b1; ++i)  // (see DYNAMIC_ROWS)
                    emit(img, h2 - 1 - i, band + (i - b0 + 1) * row);
                // the band's last row becomes row 0 of the next
                std::copy(band + (b1 - b0) * row + e0, band + (b1 - b0) * row + e1, band + e0);
            }
        }
    }
}

// the rows of box means themselves: out (N, H-k1+1, W-k2+1, C)
struct MeanRows {
    int c;
    int64_t h2, w2, k2;
    double inv;
    float* out;
    struct Thread {
        const MeanRows& r;
        std::vector<double> s;
        explicit Thread(const MeanRows& rows) : r(rows), s((size_t)rows.c) {}
        void operator()(int64_t img, int64_t i, const double* col) {
            box_row(col, r.c, r.w2, r.k2, r.inv, r.out + (img * r.h2 + i) * r.w2 * r.c, s.data());
        }
    };
};

static void box_mean(int c, const float* g, int64_t n, int64_t h, int64_t w, int64_t k1, int64_t k2, float* out,
                     int nthreads) {
    const MeanRows rows{c, h - k1 + 1, w - k2 + 1, k2, 1.0 / double(k1 * k2), out};
    box_columns(c, g, n, h, w, k1, rows, nthreads);
}

// TLC's SCA scale, the block's 1x1 convolution of the box means, s = means @ wt + bias, each row of means
// multiplied as soon as it is made (in the thread's buffer, zero-padded to whole groups of P pixels): the
// means never go through memory, and the two are one call. The means are box_mean's and the product is
// linear's, pixel for pixel the same sums: the same bytes as the two apart. Level-1 blocks of
// NAFNet-GoPro-width32 (32 x 1056^2, 384-px windows) write and read back 58 MB of means less.
template <int C>
struct ScaleRows {
    int64_t h2, w2, k2;
    double inv;
    const float* wt;  // packed
    const float* bias;
    float* out;
    struct Thread {
        const ScaleRows& r;
        const int rp;  // the row's pixels rounded up to whole groups of P
        std::vector<double> s;
        Buffer means, prod;  // zeroed: the padding pixels stay zero
        explicit Thread(const ScaleRows& rows)
            : r(rows), rp((int)((rows.w2 + P - 1) / P * P)), s((size_t)C), means((size_t)rp * C), prod((size_t)rp * C) {}
        void operator()(int64_t img, int64_t i, const double* col) {
            box_row(col, C, r.w2, r.k2, r.inv, means.data, s.data());
            gemm<C, C>(means.data, rp, r.wt, r.bias, prod.data);
            std::memcpy(r.out + (img * r.h2 + i) * r.w2 * C, prod.data, sizeof(float) * r.w2 * C);
        }
    };
};

template <int C>
static int local_scale_for(const float* g, int64_t n, int64_t h, int64_t w, int64_t k1, int64_t k2, const float* wt,
                           const float* bias, float* out, int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        const ScaleRows<C> rows{h - k1 + 1, w - k2 + 1, k2, 1.0 / double(k1 * k2), wt, bias, out};
        box_columns(C, g, n, h, w, k1, rows, nthreads);
        return 0;
    }
}

// the channel counts built (NAFNet widths 8-64 and their doublings, NAFSSR's 48, 64, 96, 128); one that the
// vector width does not divide is left out (8 on AVX-512)
#define CHANNEL_CASES(X) X(8) X(16) X(32) X(48) X(64) X(96) X(128) X(192) X(256) X(384) X(512)

template <int C>
static int front_for(const float* x, int64_t n, int64_t h, int64_t w, const float* w1t, const float* b1,
                     const float* dwt, const float* dwb, float eps, float* g, double* sums, int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        front<C>(x, n, h, w, w1t, b1, dwt, dwb, eps, g, sums, nthreads);
        return 0;
    }
}

template <int C>
static int layer_norm_for(const float* x, int64_t pixels, float eps, float* out, int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        layer_norm_map<C>(x, pixels, eps, out, nthreads);
        return 0;
    }
}

template <int C>
static int dw_gate_for(const float* u, int64_t n, int64_t h, int64_t w, const float* dwt, const float* dwb, float* g,
                       double* sums, int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        dw_gate<C>(u, n, h, w, dwt, dwb, g, sums, nthreads);
        return 0;
    }
}

template <int C>
static int back_for(const float* x, const float* g, int64_t n, int64_t h, int64_t w, const float* smap, int64_t h2,
                    int64_t w2, int64_t top, int64_t left, const float* w3t, const float* b3, const float* w4t,
                    const float* b4, const float* w5t, const float* b5, float eps, float* out, int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        back<C>(x, g, n, h, w, smap, h2, w2, top, left, w3t, b3, w4t, b4, w5t, b5, eps, out, nthreads);
        return 0;
    }
}

template <int C>
static int linear_for(int n, const float* a, int64_t rows, const float* wt, const float* bias, float* out,
                      int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        if (n == C) linear<C, C>(a, rows, wt, bias, out, nthreads);
        else if (n == 2 * C) linear<C, 2 * C>(a, rows, wt, bias, out, nthreads);
        else return 1;
        return 0;
    }
}

template <int C>
static int down_for(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* bias, float* out,
                    int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        down<C>(x, n, h, w, wt, bias, out, nthreads);
        return 0;
    }
}

template <int C>
static int ending_for(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* bias,
                      const float* res, float* out, int nthreads) {
    if constexpr (C % VW != 0) return 1;
    else {
        ending<C>(x, n, h, w, wt, bias, res, out, nthreads);
        return 0;
    }
}

template <int K>
static int up_skip_for(const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* skip, float* out,
                       int nthreads) {
    if constexpr (K % (2 * VW) != 0) return 1;
    else {
        up_skip<K>(x, n, h, w, wt, skip, out, nthreads);
        return 0;
    }
}

extern "C" {
// box means of any channel count (see box_mean); 1 for a window larger than the map
int nb_box_mean(int c, const float* g, int64_t n, int64_t h, int64_t w, int64_t k1, int64_t k2, float* out,
                int nthreads) {
    if (k1 < 1 || k2 < 1 || k1 > h || k2 > w || c < 1) return 1;
    box_mean(c, g, n, h, w, k1, k2, out, nthreads);
    return 0;
}

// out = the SCA scale of TLC, wt (packed, c x c) and bias applied to the box means of every full k1 x k2
// window (see ScaleRows); 1 for a width not built or a window larger than the map
int nb_local_scale(int c, const float* g, int64_t n, int64_t h, int64_t w, int64_t k1, int64_t k2, const float* wt,
                   const float* bias, float* out, int nthreads) {
    if (k1 < 1 || k2 < 1 || k1 > h || k2 > w) return 1;
#define SCALE(C) \
    if (c == C) return local_scale_for<C>(g, n, h, w, k1, k2, wt, bias, out, nthreads);
    CHANNEL_CASES(SCALE)
#undef SCALE
    return 1;
}

int nb_layer_norm(int c, const float* x, int64_t pixels, float eps, float* out, int nthreads) {
#define NORM(C) \
    if (c == C) return layer_norm_for<C>(x, pixels, eps, out, nthreads);
    CHANNEL_CASES(NORM)
#undef NORM
    return 1;
}

int nb_dw_gate(int c, const float* u, int64_t n, int64_t h, int64_t w, const float* dwt, const float* dwb, float* g,
               double* sums, int nthreads) {
#define DWG(C) \
    if (c == C) return dw_gate_for<C>(u, n, h, w, dwt, dwb, g, sums, nthreads);
    CHANNEL_CASES(DWG)
#undef DWG
    return 1;
}

// out = a @ wt + bias: rows x k in, rows x n out (n = k or 2k; wt k x n, packed); 1 for a shape not built
int nb_linear(int k, int n, const float* a, int64_t rows, const float* wt, const float* bias, float* out,
              int nthreads) {
#define LINEAR(C) \
    if (k == C) return linear_for<C>(n, a, rows, wt, bias, out, nthreads);
    CHANNEL_CASES(LINEAR)
#undef LINEAR
    return 1;
}

// out = the 2x2 stride-2 convolution C -> 2C of x (see down); 1 for a width not built or an odd side
int nb_down(int c, const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* bias, float* out,
            int nthreads) {
    if (h % 2 || w % 2) return 1;
#define DOWN(C) \
    if (c == C) return down_for<C>(x, n, h, w, wt, bias, out, nthreads);
    CHANNEL_CASES(DOWN)
#undef DOWN
    return 1;
}

// out = conv3x3(x) C -> 3 + bias + res (see ending); 1 for a width not built
int nb_ending(int c, const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* bias,
              const float* res, float* out, int nthreads) {
#define ENDING(C) \
    if (c == C) return ending_for<C>(x, n, h, w, wt, bias, res, out, nthreads);
    CHANNEL_CASES(ENDING)
#undef ENDING
    return 1;
}

// out = pixel_shuffle(x @ wt, 2) + skip (see up_skip); 1 for a width not built
int nb_up_skip(int k, const float* x, int64_t n, int64_t h, int64_t w, const float* wt, const float* skip, float* out,
               int nthreads) {
#define UPSKIP(C) \
    if (k == C) return up_skip_for<C>(x, n, h, w, wt, skip, out, nthreads);
    CHANNEL_CASES(UPSKIP)
#undef UPSKIP
    return 1;
}

// floats per vector this build uses (16: AVX-512, 8: AVX2)
int nb_vector_width() { return VW; }

// out = the K x N weight bt (row k: input channel k) in the layout every kernel here takes its 1x1 (and
// 2x2 down-sampling) products' weights (see pack); 1 when N is not a whole number of vectors
int nb_pack(int k, int n, const float* bt, float* out) {
    if (k < 1 || n < VW || n % VW != 0) return 1;
    pack(k, n, bt, out);
    return 0;
}

// 1 when the kernels handle c channels (built, and a multiple of the vector width), else 0
int nb_supports(int c) {
#define SUPPORTED(C) \
    if (c == C) return C % VW == 0;
    CHANNEL_CASES(SUPPORTED)
#undef SUPPORTED
    return 0;
}

int nb_front(int c, const float* x, int64_t n, int64_t h, int64_t w, const float* w1t, const float* b1,
             const float* dwt, const float* dwb, float eps, float* g, double* sums, int nthreads) {
#define FRONT(C) \
    if (c == C) return front_for<C>(x, n, h, w, w1t, b1, dwt, dwb, eps, g, sums, nthreads);
    CHANNEL_CASES(FRONT)
#undef FRONT
    return 1;
}

int nb_back(int c, const float* x, const float* g, int64_t n, int64_t h, int64_t w, const float* smap, int64_t h2,
            int64_t w2, int64_t top, int64_t left, const float* w3t, const float* b3, const float* w4t,
            const float* b4, const float* w5t, const float* b5, float eps, float* out, int nthreads) {
#define BACK(C) \
    if (c == C) return back_for<C>(x, g, n, h, w, smap, h2, w2, top, left, w3t, b3, w4t, b4, w5t, b5, eps, out, nthreads);
    CHANNEL_CASES(BACK)
#undef BACK
    return 1;
}
}
