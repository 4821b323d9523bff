/* Compiled CPU kernels for the network's per-cell layers (float32, inference only).
 *
 * The layers apply a chain of small operations (layer norms, dot products with a few
 * vectors, softmaxes, small linear maps) to every cell of the sample matrix.  In torch
 * each operation is a pass over all cells; here one pass does the whole chain for a block
 * of eight cells held transposed (one vector per channel, its 8 lanes the 8 cells), or
 * for one row of cells with its outputs in registers.
 *
 *   column_moments  sum_r <q[e_ir], k[e_jr]> per head: the column attention's products
 *   column_mix      base[e_ir] + gate1[e_ir] * sum_{h, j} A_h[i][j] v[e_jr][h]
 *   read_columns    pooled[j] = sum_r softmax_r(<q_j, LN(x_r)>) LN(x_r), rows masked
 *   update_cells    x + sum_j softmax_j(<k_j, LN(x)> + kb_j) v_j, then x + FFN(x)
 *
 * (e_ir: the table entry of the cell in row r, column i.)  LN is the layer norm without
 * its scale and shift (callers fold those into the vectors and maps).  Scores are in
 * base 2: callers multiply them by log2(e).
 *
 * The kernels are compiled for AVX2 + FMA and refuse to run on a CPU without them (the
 * backend, mistmodel/backends/simd.py, then runs the torch backend).  Arguments from
 * Python are arrays through the buffer protocol (a contiguous CPU tensor's .numpy()):
 * the bindings at the end of this file check each one's element type, dimensions, shape
 * and contiguity, the table indices and the sizes the kernels' buffers hold, and name
 * the argument that fails.  Each call computes a range of columns (or rows, or samples)
 * of its output, so that callers can split the work over threads; the GIL is released
 * while it runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 8
#define MAX_C 64          /* channels of a cell */
#define MAX_J 64          /* queries or keys per column */
#define MAX_F 256         /* hidden width of the feed-forward layer */
#define MAX_HD 4096       /* heads x columns in the column attention */
#define SUM_ROWS 64       /* column_moments adds its rows in partial sums of this many */
#define LOG2E_F 1.4426950408889634f

typedef float v8f __attribute__((vector_size(4 * LANES)));
typedef int32_t v8i __attribute__((vector_size(4 * LANES)));

#pragma GCC push_options
#pragma GCC target("avx2,fma")

static inline __attribute__((always_inline)) v8f splat(float v)
{
    return (v8f){v, v, v, v, v, v, v, v};
}

static inline __attribute__((always_inline)) v8f blend(v8i mask, v8f a, v8f b)
{   /* a where mask is all ones, else b */
    return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

/* 2^t for t <= 0 (t is clamped below at -126, where 2^t is 0 to float precision): the
 * integer part goes into the exponent bits, the fraction through a degree-6 polynomial
 * fitted to 2^f on [0, 1] (relative error 3e-9 before float rounding). */
static inline __attribute__((always_inline)) v8f exp2_neg(v8f t)
{
    const v8f lowest = splat(-126.0f);
    t = blend(t < lowest, lowest, t);
    v8i i = __builtin_convertvector(t, v8i);               /* truncated towards 0 */
    i += (t < __builtin_convertvector(i, v8f));            /* floor: -1 where t < trunc */
    v8f f = t - __builtin_convertvector(i, v8f);           /* in [0, 1) */
    v8f p = splat(0.00021877504767878824f);
    p = p * f + 0.001238782147953945f;
    p = p * f + 0.009684580452271404f;
    p = p * f + 0.055480426325805715f;
    p = p * f + 0.24023050204499075f;
    p = p * f + 0.6931469286930299f;
    p = p * f + 1.000000002586889f;
    return p * (v8f)((i + 127) << 23);
}

/* 1 / d for d in [1, 2]: the hardware estimate (12 bits) and one Newton step (~23 bits). */
static inline __attribute__((always_inline)) v8f reciprocal(v8f d)
{
    v8f r = _mm256_rcp_ps(d);
    return r * (2.0f - d * r);
}

/* silu(a) = a / (1 + e^-a), with the power taken on -|a| so that it cannot overflow. */
static inline __attribute__((always_inline)) v8f silu(v8f a)
{
    v8i negative = a < 0.0f;
    v8f z = blend(negative, a, -a) * LOG2E_F;     /* -|a| log2(e) */
    v8f e = exp2_neg(z);                           /* e^-|a| */
    /* a >= 0: a / (1 + e^-a);   a < 0: a e^a / (e^a + 1) */
    return blend(negative, a * e, a) * reciprocal(e + 1.0f);
}

/* The 8 x 8 block r[0..7] transposed in place. */
static inline __attribute__((always_inline)) void transpose8(v8f *r)
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* Rows r0 .. r0+7 of a column (N x c, c a multiple of 8), transposed into xt[c]; rows
 * past N are 0. */
static inline __attribute__((always_inline)) void
load_rows(const float *x, int N, int c, int r0, v8f *xt)
{
    float rows[LANES * MAX_C];
    const float *src = x + (int64_t)r0 * c;
    int count = N - r0;
    if (count < LANES) {
        memcpy(rows, src, sizeof(float) * count * c);
        memset(rows + count * c, 0, sizeof(float) * (LANES - count) * c);
        src = rows;
    }
    for (int k = 0; k < c; k += 8) {
        for (int l = 0; l < LANES; l++) xt[k + l] = _mm256_loadu_ps(src + l * c + k);
        transpose8(xt + k);
    }
}

/* The inverse of load_rows: xt[c] back into rows r0 .. min(r0 + 8, N) - 1. */
static inline __attribute__((always_inline)) void
store_rows(float *out, int N, int c, int r0, v8f *xt)
{
    float rows[LANES * MAX_C];
    float *dst = out + (int64_t)r0 * c;
    int count = N - r0;
    for (int k = 0; k < c; k += 8) {
        transpose8(xt + k);
        for (int l = 0; l < LANES; l++)
            _mm256_storeu_ps((count < LANES ? rows : dst) + l * c + k, xt[k + l]);
    }
    if (count < LANES) memcpy(dst, rows, sizeof(float) * count * c);
}

/* nt = (xt - mean) / sqrt(var + eps), over the c channels of each lane. */
static inline __attribute__((always_inline)) void
normalise(const v8f *xt, int c, float eps, v8f *nt)
{
    v8f mean = splat(0.0f), var = splat(0.0f);
    for (int k = 0; k < c; k++) mean += xt[k];
    mean *= 1.0f / (float)c;
    for (int k = 0; k < c; k++) {
        nt[k] = xt[k] - mean;
        var += nt[k] * nt[k];
    }
    v8f inv = splat(1.0f) / _mm256_sqrt_ps(var * (1.0f / (float)c) + eps);
    for (int k = 0; k < c; k++) nt[k] *= inv;
}

static inline __attribute__((always_inline)) float lane_sum(v8f v)
{
    return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

/* out[i] = bias[i] + sum_k w[i * cols + k] in[k] for i < rows (bias may be NULL).  Eight
 * rows at a time, so that eight independent sums hide the latency of each multiply-add. */
static inline __attribute__((always_inline)) void
matvec(const float *w, const float *bias, int rows, int cols, const v8f *in, v8f *out)
{
    int i = 0;
    for (; i + 8 <= rows; i += 8) {
        v8f a[8];
        for (int r = 0; r < 8; r++) a[r] = splat(bias ? bias[i + r] : 0.0f);
        for (int k = 0; k < cols; k++) {
            v8f v = in[k];
            for (int r = 0; r < 8; r++) a[r] += w[(i + r) * cols + k] * v;
        }
        for (int r = 0; r < 8; r++) out[i + r] = a[r];
    }
    for (; i < rows; i++) {
        v8f a = splat(bias ? bias[i] : 0.0f);
        for (int k = 0; k < cols; k++) a += w[i * cols + k] * in[k];
        out[i] = a;
    }
}

/* For each column (N x c): pooled[j] = sum_r w_rj LN(x_r) over the rows r that mask marks
 * real, w_rj = 2^(s_rj - shift_j) / sum_r 2^(s_rj - shift_j), s_rj = <q_j, LN(x_r)>.
 * shift_j bounds s_rj from above, so no power exceeds 1.  Column col of x is column
 * col0 + col of the batch, whose sample (and mask row) is (col0 + col) / D.
 * Two steps per column: the normalised cells nt and the powers p of every block of 8 rows
 * into buffers, then pooled[j][k] = sum over blocks and lanes of p[j] nt[k], four j by two
 * k at a time in registers.  Returns -1 if out of memory. */
static int read_columns(const float *x, const uint8_t *mask, int64_t col0, int64_t cols,
                        int64_t D, int N, int c, const float *q, const float *shift, int J,
                        float eps, float *out)
{
    const int blocks = (N + LANES - 1) / LANES;
    v8f xt[MAX_C], s[MAX_J];
    v8f *nt = aligned_alloc(32, sizeof(v8f) * blocks * c);
    v8f *p = aligned_alloc(32, sizeof(v8f) * blocks * J);
    if (nt == NULL || p == NULL) {
        free(nt);
        free(p);
        return -1;
    }
    for (int64_t col = 0; col < cols; col++) {
        const float *xc = x + col * N * c;
        const uint8_t *mc = mask + ((col0 + col) / D) * N;
        for (int bl = 0; bl < blocks; bl++) {
            int r0 = bl * LANES;
            v8f *ntb = nt + (int64_t)bl * c, *pb = p + (int64_t)bl * J;
            load_rows(xc, N, c, r0, xt);
            normalise(xt, c, eps, ntb);
            v8f valid;
            for (int l = 0; l < LANES; l++) valid[l] = (r0 + l < N && mc[r0 + l]) ? 1.0f : 0.0f;
            matvec(q, NULL, J, c, ntb, s);
            for (int j = 0; j < J; j++) pb[j] = exp2_neg(s[j] - shift[j]) * valid;
        }
        float *oc = out + col * J * c;
        int j = 0;
        for (; j + 4 <= J; j += 4) {
            v8f tot[4] = {splat(0.0f), splat(0.0f), splat(0.0f), splat(0.0f)};
            for (int bl = 0; bl < blocks; bl++)
                for (int a = 0; a < 4; a++) tot[a] += p[(int64_t)bl * J + j + a];
            for (int k = 0; k < c; k += 2) {
                v8f acc[4][2];
                for (int a = 0; a < 4; a++) acc[a][0] = acc[a][1] = splat(0.0f);
                for (int bl = 0; bl < blocks; bl++) {
                    const v8f *pb = p + (int64_t)bl * J + j, *ntb = nt + (int64_t)bl * c + k;
                    v8f n0 = ntb[0], n1 = ntb[1];
                    for (int a = 0; a < 4; a++) {
                        acc[a][0] += pb[a] * n0;
                        acc[a][1] += pb[a] * n1;
                    }
                }
                for (int a = 0; a < 4; a++) {
                    float inv = 1.0f / lane_sum(tot[a]);
                    oc[(j + a) * c + k] = lane_sum(acc[a][0]) * inv;
                    oc[(j + a) * c + k + 1] = lane_sum(acc[a][1]) * inv;
                }
            }
        }
        for (; j < J; j++) {
            v8f tot = splat(0.0f);
            for (int bl = 0; bl < blocks; bl++) tot += p[(int64_t)bl * J + j];
            float inv = 1.0f / lane_sum(tot);
            for (int k = 0; k < c; k += 8) {
                v8f acc[8];
                for (int t = 0; t < 8; t++) acc[t] = splat(0.0f);
                for (int bl = 0; bl < blocks; bl++) {
                    v8f w = p[(int64_t)bl * J + j];
                    const v8f *ntb = nt + (int64_t)bl * c + k;
                    for (int t = 0; t < 8; t++) acc[t] += w * ntb[t];
                }
                for (int t = 0; t < 8; t++) oc[j * c + k + t] = lane_sum(acc[t]) * inv;
            }
        }
    }
    free(nt);
    free(p);
    return 0;
}

/* For each cell x of each column: u = x + sum_j softmax_j(<k_j, LN(x)> + kb_j) v_j, the
 * softmax over the m = J / H keys of each head (base 2, less its maximum), then
 * out = u + w2 silu(w1 LN(u) + b1) + b2.  Per column: keys (J x c), kb (J), vals (c x J). */
static void update_cells(const float *x, int64_t cols, int N, int c, const float *keys,
                         const float *kb, const float *vals, int J, int H, float eps,
                         const float *w1, const float *b1, int F, const float *w2,
                         const float *b2, float eps2, float *out)
{
    v8f xt[MAX_C], nt[MAX_C], upd[MAX_C], s[MAX_J], hid[MAX_F];
    int m = J / H;
    for (int64_t col = 0; col < cols; col++) {
        const float *xc = x + col * N * c, *kc = keys + col * J * c, *bc = kb + col * J;
        const float *vc = vals + col * J * c;
        float *oc = out + col * N * c;
        for (int r0 = 0; r0 < N; r0 += LANES) {
            load_rows(xc, N, c, r0, xt);
            normalise(xt, c, eps, nt);
            matvec(kc, bc, J, c, nt, s);
            for (int h = 0; h < H; h++) {
                v8f *sh = s + h * m;
                v8f top = sh[0], tot = splat(0.0f);
                for (int j = 1; j < m; j++) top = blend(sh[j] > top, sh[j], top);
                for (int j = 0; j < m; j++) {
                    sh[j] = exp2_neg(sh[j] - top);
                    tot += sh[j];
                }
                tot = splat(1.0f) / tot;
                for (int j = 0; j < m; j++) sh[j] *= tot;
            }
            matvec(vc, NULL, c, J, s, upd);
            for (int k = 0; k < c; k++) xt[k] += upd[k];
            normalise(xt, c, eps2, nt);
            matvec(w1, b1, F, c, nt, hid);
            for (int f = 0; f < F; f++) hid[f] = silu(hid[f]);
            matvec(w2, b2, c, F, hid, upd);
            for (int k = 0; k < c; k++) xt[k] += upd[k];
            store_rows(oc, N, c, r0, xt);
        }
    }
}

/* Column attention's mixing for rows r0 .. r1-1 of one sample, from per-entry tables:
 * out[i][r] = base[e_ir] + gate1[e_ir] * sum_{h, j} mix[i][h D + j] vals[e_jr][h],
 * e_ir = index[i][r] the table entry of cell (r, i).  mix (D x H D) holds the H maps side
 * by side; vals (entries x H x c); gate1, base (entries x c); out (D x N x c).
 * MIX_ROWS(C8, IB) defines mix_rows_C8_IB for c = 8 C8 channels: IB output columns at a
 * time, each as C8 vectors, in registers. */
#define MIX_ROWS(C8, IB)                                                                   \
static void mix_rows_##C8##_##IB(const int64_t *index, const float *mix, const float *vals,\
                                 const float *gate1, const float *base, int D, int N,      \
                                 int H, int r0, int r1, float *out)                        \
{                                                                                          \
    const int c = 8 * C8, HD = H * D;                                                      \
    const float *rowv[MAX_HD];                                                             \
    for (int r = r0; r < r1; r++) {                                                        \
        for (int j = 0; j < D; j++) {                                                      \
            const float *v = vals + index[(int64_t)j * N + r] * H * c;                     \
            for (int h = 0; h < H; h++) rowv[h * D + j] = v + h * c;                       \
        }                                                                                  \
        for (int i = 0; i < D; i += IB) {                                                  \
            int ib = D - i < IB ? D - i : IB;                                              \
            v8f acc[IB][C8];                                                               \
            for (int a = 0; a < IB; a++)                                                   \
                for (int t = 0; t < C8; t++) acc[a][t] = splat(0.0f);                      \
            const float *m[IB];         /* rows of mix (repeated past the last column) */ \
            for (int a = 0; a < IB; a++) m[a] = mix + (int64_t)(i + (a < ib ? a : 0)) * HD;\
            for (int hj = 0; hj < HD; hj++) {                                              \
                v8f v[C8];                                                                 \
                for (int t = 0; t < C8; t++) v[t] = _mm256_loadu_ps(rowv[hj] + 8 * t);     \
                for (int a = 0; a < IB; a++) {                                             \
                    v8f w = splat(m[a][hj]);                                               \
                    for (int t = 0; t < C8; t++) acc[a][t] += w * v[t];                    \
                }                                                                          \
            }                                                                              \
            for (int a = 0; a < ib; a++) {                                                 \
                int64_t e = index[(int64_t)(i + a) * N + r];                               \
                float *o = out + ((int64_t)(i + a) * N + r) * c;                           \
                for (int t = 0; t < C8; t++)                                               \
                    _mm256_storeu_ps(o + 8 * t,                                            \
                                     _mm256_loadu_ps(base + e * c + 8 * t)                 \
                                     + _mm256_loadu_ps(gate1 + e * c + 8 * t) * acc[a][t]);\
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}
MIX_ROWS(1, 8)
MIX_ROWS(2, 6)
MIX_ROWS(3, 3)
MIX_ROWS(4, 2)
MIX_ROWS(5, 2)
MIX_ROWS(6, 2)
MIX_ROWS(7, 1)
MIX_ROWS(8, 1)

static void column_mix(const int64_t *index, const float *mix, const float *vals,
                       const float *gate1, const float *base, int D, int N, int H, int c,
                       int r0, int r1, float *out)
{
    switch (c / 8) {
    case 1: mix_rows_1_8(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    case 2: mix_rows_2_6(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    case 3: mix_rows_3_3(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    case 4: mix_rows_4_2(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    case 5: mix_rows_5_2(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    case 6: mix_rows_6_2(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    case 7: mix_rows_7_1(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    default: mix_rows_8_1(index, mix, vals, gate1, base, D, N, H, r0, r1, out); break;
    }
}

/* Column attention's row sums of query-key products for one sample, from per-entry
 * tables with head width 8: out[h][i][j] = sum_r <q[e_ir][h], k[e_jr][h]> over the rows
 * r0 <= r < r1 that mask marks real, e_ir = index[i][r] (index: D x N).  q, k (entries x
 * H x 8); out (H x D x D).
 * The keys are first laid out transposed, eight columns at a time, rows consecutive
 * (kt: H x Dp / 8 x rows x 8 x 8, Dp = D rounded up to 8, zero beyond D); then eight
 * output rows i by eight columns j at a time stay in registers over SUM_ROWS rows, whose
 * partial sums are added (float32 sums over thousands of rows would lose digits).
 * Returns -1 if out of memory. */
static int column_moments(const int64_t *index, const uint8_t *mask, const float *q,
                          const float *k, int D, int N, int H, int r0, int r1, float *out)
{
    const int Dp = (D + 7) / 8 * 8, stride = H * 8 * Dp;   /* floats of kt per row */
    int rows = 0;
    for (int r = r0; r < r1; r++) rows += mask[r] != 0;
    int *real = malloc(sizeof(int) * (rows > 0 ? rows : 1));
    float *kt = aligned_alloc(32, sizeof(float) * ((size_t)(rows > 0 ? rows : 1) * stride));
    if (real == NULL || kt == NULL) {
        free(real);
        free(kt);
        return -1;
    }
    for (int r = r0, n = 0; r < r1; r++)
        if (mask[r]) real[n++] = r;
    for (int n = 0; n < rows; n++)
        for (int h = 0; h < H; h++)
            for (int j0 = 0; j0 < Dp; j0 += 8) {
                v8f block[8];
                for (int j = 0; j < 8; j++) {
                    block[j] = splat(0.0f);
                    if (j0 + j < D)
                        block[j] = _mm256_loadu_ps(
                            k + (index[(int64_t)(j0 + j) * N + real[n]] * H + h) * 8);
                }
                transpose8(block);
                float *dst = kt + (((size_t)h * (Dp / 8) + j0 / 8) * rows + n) * 64;
                for (int t = 0; t < 8; t++) _mm256_store_ps(dst + 8 * t, block[t]);
            }
    for (int h = 0; h < H; h++)
        for (int j0 = 0; j0 < Dp; j0 += 8)
            for (int i0 = 0; i0 < D; i0 += 8) {
                int ib = D - i0 < 8 ? D - i0 : 8;
                v8f total[8];
                for (int a = 0; a < 8; a++) total[a] = splat(0.0f);
                for (int n0 = 0; n0 < rows; n0 += SUM_ROWS) {   /* partial sums, then added */
                    int n1 = rows - n0 < SUM_ROWS ? rows : n0 + SUM_ROWS;
                    v8f acc[8];
                    for (int a = 0; a < 8; a++) acc[a] = splat(0.0f);
                    for (int n = n0; n < n1; n++) {
                        const float *qi[8];
                        for (int a = 0; a < 8; a++)
                            qi[a] = q + (index[(int64_t)(i0 + (a < ib ? a : 0)) * N + real[n]]
                                         * H + h) * 8;
                        const float *kn = kt + (((size_t)h * (Dp / 8) + j0 / 8) * rows + n) * 64;
                        for (int t = 0; t < 8; t++) {
                            v8f kv = _mm256_load_ps(kn + 8 * t);
                            for (int a = 0; a < 8; a++) acc[a] += splat(qi[a][t]) * kv;
                        }
                    }
                    for (int a = 0; a < 8; a++) total[a] += acc[a];
                }
                for (int a = 0; a < ib; a++)
                    for (int j = 0; j < 8 && j0 + j < D; j++)
                        out[((int64_t)h * D + i0 + a) * D + j0 + j] = total[a][j];
            }
    free(real);
    free(kt);
    return 0;
}

#pragma GCC pop_options

/* ---- Python bindings: arrays through the buffer protocol, checked ---------------- */

static int use_avx2(void)
{
    static int answer = -1;
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return answer;
}

#define MAX_ARGS 12
enum kind { F32, I64, MASK };
static const char *const KIND_NAMES[] = {"float32", "int64", "bool or uint8"};

/* The buffers one call holds, released together. */
typedef struct {
    const char *fn;
    Py_buffer views[MAX_ARGS];
    int held;
} Args;

static void release(Args *a)
{
    for (int i = 0; i < a->held; i++) PyBuffer_Release(&a->views[i]);
    a->held = 0;
}

static int has_kind(const Py_buffer *v, enum kind kind)
{
    const char *f = v->format ? v->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') f++;
    if (f[0] == '\0' || f[1] != '\0') return 0;
    switch (kind) {
    case F32: return v->itemsize == 4 && f[0] == 'f';
    case I64: return v->itemsize == 8 && (f[0] == 'l' || f[0] == 'q');
    default: return v->itemsize == 1 && (f[0] == '?' || f[0] == 'B');
    }
}

static void shape_text(char *buf, size_t size, int ndim, const Py_ssize_t *shape)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %zd" : "%zd", shape[i]);
    if (used < size) snprintf(buf + used, size - used, ndim == 1 ? ",)" : ")");
}

/* obj's memory as a C-contiguous array of `kind` with `ndim` dimensions, `shape[i]`
 * long where shape[i] >= 0 (where it is -1, the array's length is written into it).
 * NULL with a ValueError naming the argument if obj is anything else. */
static void *take(Args *a, PyObject *obj, const char *name, enum kind kind, int ndim,
                  Py_ssize_t *shape, int writable)
{
    Py_buffer *v = &a->views[a->held];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, v, flags) != 0) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: %s must be a C-contiguous%s %s array (a "
                     "contiguous CPU tensor's .numpy()), got %R", a->fn, name,
                     writable ? " writable" : "", KIND_NAMES[kind], (PyObject *)Py_TYPE(obj));
        return NULL;
    }
    a->held++;
    if (!has_kind(v, kind)) {
        PyErr_Format(PyExc_ValueError, "%s: %s must hold %s, got format '%s' with %zd "
                     "bytes per item", a->fn, name, KIND_NAMES[kind],
                     v->format ? v->format : "B", v->itemsize);
        return NULL;
    }
    if (v->ndim != ndim) {
        PyErr_Format(PyExc_ValueError, "%s: %s must have %d dimensions, got %d", a->fn, name,
                     ndim, v->ndim);
        return NULL;
    }
    int same = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) shape[i] = v->shape[i];
        same &= shape[i] == v->shape[i];
    }
    if (!same) {
        char want[160], got[160];
        shape_text(want, sizeof want, ndim, shape);
        shape_text(got, sizeof got, ndim, v->shape);
        PyErr_Format(PyExc_ValueError, "%s: %s must have shape %s, got %s", a->fn, name, want,
                     got);
        return NULL;
    }
    return v->buf;
}

/* Whether the kernels can run here with these sizes; sets a Python error if not. */
static int usable(const Args *a, Py_ssize_t c, Py_ssize_t J, int H, Py_ssize_t F)
{
    if (!use_avx2()) {
        PyErr_Format(PyExc_RuntimeError, "%s: this CPU lacks AVX2 and FMA", a->fn);
        return 0;
    }
    if (c < 8 || c > MAX_C || c % 8 || J < 1 || J > MAX_J || H < 1 || J % H || F < 1
        || F > MAX_F) {
        PyErr_Format(PyExc_ValueError, "%s: unsupported sizes c=%zd J=%zd H=%d F=%zd (c a "
                     "multiple of 8 up to %d, J up to %d and a multiple of H, F up to %d)",
                     a->fn, c, J, H, F, MAX_C, MAX_J, MAX_F);
        return 0;
    }
    return 1;
}

static int in_range(const Args *a, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t total,
                    const char *what)
{
    if (0 <= lo && lo <= hi && hi <= total) return 1;
    PyErr_Format(PyExc_ValueError, "%s: the range [%zd, %zd) of %s is not within [0, %zd)",
                 a->fn, lo, hi, what, total);
    return 0;
}

/* Every entry of index[0 .. count) is a row of a table of `entries` rows. */
static int valid_index(const Args *a, const int64_t *index, Py_ssize_t count,
                       Py_ssize_t entries)
{
    for (Py_ssize_t i = 0; i < count; i++)
        if (index[i] < 0 || index[i] >= entries) {
            PyErr_Format(PyExc_ValueError, "%s: index holds %lld, outside the table's "
                         "entries [0, %zd)", a->fn, (long long)index[i], entries);
            return 0;
        }
    return 1;
}

static PyObject *py_read_columns(PyObject *self, PyObject *args)
{
    PyObject *ox, *omask, *oq, *oshift, *oout;
    float eps;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "OOOOfOnn", &ox, &omask, &oq, &oshift, &eps, &oout, &lo, &hi))
        return NULL;
    Args a = {.fn = "read_columns"};
    Py_ssize_t xs[4] = {-1, -1, -1, -1}, ms[2] = {-1, -1}, qs[2] = {-1, -1}, ss[1], os_[4];
    const float *x = take(&a, ox, "cells", F32, 4, xs, 0);
    PyObject *result = NULL;
    if (x == NULL) goto done;
    const Py_ssize_t B = xs[0], D = xs[1], N = xs[2], c = xs[3];
    ms[0] = B, ms[1] = N, qs[1] = c;
    const uint8_t *mask = take(&a, omask, "row_mask", MASK, 2, ms, 0);
    const float *q = mask ? take(&a, oq, "queries", F32, 2, qs, 0) : NULL;
    if (q == NULL) goto done;
    const Py_ssize_t J = qs[0];
    ss[0] = J, os_[0] = B, os_[1] = D, os_[2] = J, os_[3] = c;
    const float *shift = take(&a, oshift, "shift", F32, 1, ss, 0);
    float *out = shift ? take(&a, oout, "out", F32, 4, os_, 1) : NULL;
    if (out == NULL || !usable(&a, c, J, 1, 1) || !in_range(&a, lo, hi, B * D, "columns"))
        goto done;
    if (N < 1) {
        PyErr_SetString(PyExc_ValueError, "read_columns: cells must have at least one row");
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_columns(x + lo * N * c, mask, lo, hi - lo, D, (int)N, (int)c, q, shift,
                          (int)J, eps, out + lo * J * c);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    release(&a);
    return result;
}

static PyObject *py_update_cells(PyObject *self, PyObject *args)
{
    PyObject *ox, *okeys, *okb, *ovals, *ow1, *ob1, *ow2, *ob2, *oout;
    int H;
    float eps, eps2;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "OOOOifOOOOfOnn", &ox, &okeys, &okb, &ovals, &H, &eps, &ow1,
                          &ob1, &ow2, &ob2, &eps2, &oout, &lo, &hi))
        return NULL;
    Args a = {.fn = "update_cells"};
    Py_ssize_t xs[4] = {-1, -1, -1, -1};
    PyObject *result = NULL;
    const float *x = take(&a, ox, "cells", F32, 4, xs, 0);
    if (x == NULL) goto done;
    const Py_ssize_t B = xs[0], D = xs[1], N = xs[2], c = xs[3];
    Py_ssize_t ks[4] = {B, D, -1, c}, w1s[2] = {-1, c};
    const float *keys = take(&a, okeys, "keys", F32, 4, ks, 0);
    const float *w1 = keys ? take(&a, ow1, "w1", F32, 2, w1s, 0) : NULL;
    if (w1 == NULL) goto done;
    const Py_ssize_t J = ks[2], F = w1s[0];
    Py_ssize_t kbs[3] = {B, D, J}, vs[4] = {B, D, c, J}, b1s[1] = {F}, w2s[2] = {c, F},
               b2s[1] = {c}, os_[4] = {B, D, N, c};
    const float *kb = take(&a, okb, "key_bias", F32, 3, kbs, 0);
    const float *vals = kb ? take(&a, ovals, "values", F32, 4, vs, 0) : NULL;
    const float *b1 = vals ? take(&a, ob1, "b1", F32, 1, b1s, 0) : NULL;
    const float *w2 = b1 ? take(&a, ow2, "w2", F32, 2, w2s, 0) : NULL;
    const float *b2 = w2 ? take(&a, ob2, "b2", F32, 1, b2s, 0) : NULL;
    float *out = b2 ? take(&a, oout, "out", F32, 4, os_, 1) : NULL;
    if (out == NULL || !usable(&a, c, J, H, F) || !in_range(&a, lo, hi, B * D, "columns"))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    update_cells(x + lo * N * c, hi - lo, (int)N, (int)c, keys + lo * J * c, kb + lo * J,
                 vals + lo * J * c, (int)J, H, eps, w1, b1, (int)F, w2, b2, eps2,
                 out + lo * N * c);
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&a);
    return result;
}

static PyObject *py_column_moments(PyObject *self, PyObject *args)
{
    PyObject *oindex, *omask, *oq, *ok, *oout;
    Py_ssize_t b0, b1, r0, r1;
    if (!PyArg_ParseTuple(args, "OOOOOnnnn", &oindex, &omask, &oq, &ok, &oout, &b0, &b1, &r0,
                          &r1))
        return NULL;
    Args a = {.fn = "column_moments"};
    Py_ssize_t is[3] = {-1, -1, -1}, qs[3] = {-1, -1, 8};
    PyObject *result = NULL;
    const int64_t *index = take(&a, oindex, "index", I64, 3, is, 0);
    const float *q = index ? take(&a, oq, "queries", F32, 3, qs, 0) : NULL;
    if (q == NULL) goto done;
    const Py_ssize_t B = is[0], D = is[1], N = is[2], T = qs[0], H = qs[1];
    Py_ssize_t ms[2] = {B, N}, ks[3] = {T, H, 8}, os_[4] = {B, H, D, D};
    const uint8_t *mask = take(&a, omask, "row_mask", MASK, 2, ms, 0);
    const float *k = mask ? take(&a, ok, "keys", F32, 3, ks, 0) : NULL;
    float *out = k ? take(&a, oout, "out", F32, 4, os_, 1) : NULL;
    if (out == NULL || !usable(&a, 8, 1, 1, 1) || !in_range(&a, b0, b1, B, "samples")
        || !in_range(&a, r0, r1, N, "rows")
        || !valid_index(&a, index + b0 * D * N, (b1 - b0) * D * N, T))
        goto done;
    if (H < 1 || D < 1) {
        PyErr_SetString(PyExc_ValueError, "column_moments: no heads or no columns");
        goto done;
    }
    int status = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = b0; b < b1 && status == 0; b++)
        status = column_moments(index + b * D * N, mask + b * N, q, k, (int)D, (int)N, (int)H,
                                (int)r0, (int)r1, out + b * H * D * D);
    Py_END_ALLOW_THREADS
    if (status != 0) {
        PyErr_NoMemory();
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    release(&a);
    return result;
}

static PyObject *py_column_mix(PyObject *self, PyObject *args)
{
    PyObject *oindex, *omix, *ovals, *ogate, *obase, *oout;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "OOOOOOnn", &oindex, &omix, &ovals, &ogate, &obase, &oout, &lo,
                          &hi))
        return NULL;
    Args a = {.fn = "column_mix"};
    Py_ssize_t is[3] = {-1, -1, -1}, vs[3] = {-1, -1, -1};
    PyObject *result = NULL;
    const int64_t *index = take(&a, oindex, "index", I64, 3, is, 0);
    const float *vals = index ? take(&a, ovals, "values", F32, 3, vs, 0) : NULL;
    if (vals == NULL) goto done;
    const Py_ssize_t B = is[0], D = is[1], N = is[2], T = vs[0], H = vs[1], c = vs[2];
    Py_ssize_t xs[3] = {B, D, H * D}, gs[2] = {T, c}, bs[2] = {T, c}, os_[4] = {B, D, N, c};
    const float *mix = take(&a, omix, "side_by_side", F32, 3, xs, 0);
    const float *gate1 = mix ? take(&a, ogate, "one_plus_gate", F32, 2, gs, 0) : NULL;
    const float *base = gate1 ? take(&a, obase, "base", F32, 2, bs, 0) : NULL;
    float *out = base ? take(&a, oout, "out", F32, 4, os_, 1) : NULL;
    if (out == NULL || !usable(&a, c, 1, 1, 1) || !in_range(&a, lo, hi, B * N, "rows"))
        goto done;
    if (H < 1 || D < 1 || H * D > MAX_HD) {
        PyErr_Format(PyExc_ValueError, "column_mix: heads x columns must be in [1, %d], got "
                     "%zd x %zd", MAX_HD, H, D);
        goto done;
    }
    if (lo == hi) {                                   /* no rows (N may be 0) */
        result = Py_NewRef(Py_None);
        goto done;
    }
    const Py_ssize_t s0 = lo / N, s1 = (hi - 1) / N + 1;
    if (!valid_index(&a, index + s0 * D * N, (s1 - s0) * D * N, T)) goto done;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = s0; s < s1; s++) {
        Py_ssize_t first = lo - s * N > 0 ? lo - s * N : 0, last = hi - s * N < N ? hi - s * N : N;
        column_mix(index + s * D * N, mix + s * D * H * D, vals, gate1, base, (int)D, (int)N,
                   (int)H, (int)c, (int)first, (int)last, out + s * D * N * c);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    release(&a);
    return result;
}

static PyObject *py_limits(PyObject *self, PyObject *args)
{
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i}", "max_c", MAX_C, "max_j", MAX_J, "max_f",
                         MAX_F, "max_hd", MAX_HD, "cpu_ok", use_avx2());
}

static PyMethodDef methods[] = {
    {"read_columns", py_read_columns, METH_VARARGS,
     "read_columns(cells, row_mask, queries, shift, eps, out, lo, hi): pool LN(cells) of "
     "the columns lo .. hi-1 by J base-2 softmax queries over their masked rows."},
    {"update_cells", py_update_cells, METH_VARARGS,
     "update_cells(cells, keys, key_bias, values, heads, eps, w1, b1, w2, b2, eps2, out, lo, "
     "hi): the cells of columns lo .. hi-1 read their column's keys, then a pre-norm "
     "feed-forward layer."},
    {"column_moments", py_column_moments, METH_VARARGS,
     "column_moments(index, row_mask, queries, keys, out, b0, b1, r0, r1): the column "
     "attention's row sums over rows r0 .. r1-1 of samples b0 .. b1-1, from per-entry tables."},
    {"column_mix", py_column_mix, METH_VARARGS,
     "column_mix(index, side_by_side, values, one_plus_gate, base, out, lo, hi): the column "
     "attention's update of the batch's rows lo .. hi-1 (of B x N), from per-entry tables."},
    {"limits", py_limits, METH_NOARGS,
     "Size limits, and whether this CPU has AVX2 and FMA (cpu_ok)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_simd", "SIMD CPU kernels of the MIST network's per-cell layers.",
    -1, methods};

PyMODINIT_FUNC PyInit__simd(void) { return PyModule_Create(&module); }
