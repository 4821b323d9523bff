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
 * Python side then uses its torch path).  Arguments from Python are data pointers of
 * contiguous CPU tensors and their sizes; mistmodel/kernels.py checks device, dtype,
 * shapes and table indices before passing them, this file the sizes its buffers hold.
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

/* ---- Python bindings: arguments are data pointers (int) and sizes --------------- */

static int use_avx2(void)
{
    static int answer = -1;
    if (answer < 0) {
        __builtin_cpu_init();
        answer = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return answer;
}

/* Whether the kernels can run here with these sizes; sets a Python error if not. */
static int usable(const char *what, int c, int J, int H, int F)
{
    if (!use_avx2()) {
        PyErr_Format(PyExc_RuntimeError, "%s: this CPU lacks AVX2 and FMA", what);
        return 0;
    }
    if (c < 8 || c > MAX_C || c % 8 || J < 1 || J > MAX_J || H < 1 || J % H || F < 1
        || F > MAX_F) {
        PyErr_Format(PyExc_ValueError, "%s: unsupported sizes c=%d J=%d H=%d F=%d", what, c, J,
                     H, F);
        return 0;
    }
    return 1;
}

static PyObject *py_read_columns(PyObject *self, PyObject *args)
{
    unsigned long long x, mask, q, shift, out;
    long long col0, cols, D;
    int N, c, J;
    float eps;
    if (!PyArg_ParseTuple(args, "KKLLLiiKKifK", &x, &mask, &col0, &cols, &D, &N, &c, &q,
                          &shift, &J, &eps, &out))
        return NULL;
    if (!usable("read_columns", c, J, 1, 1) || N < 1 || cols < 0 || col0 < 0 || D < 1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "read_columns: sizes out of range");
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = read_columns((const float *)x, (const uint8_t *)mask, col0, cols, D, N, c,
                          (const float *)q, (const float *)shift, J, eps, (float *)out);
    Py_END_ALLOW_THREADS
    if (status != 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_update_cells(PyObject *self, PyObject *args)
{
    unsigned long long x, keys, kb, vals, w1, b1, w2, b2, out;
    long long cols;
    int N, c, J, H, F;
    float eps, eps2;
    if (!PyArg_ParseTuple(args, "KLiiKKKiifKKiKKfK", &x, &cols, &N, &c, &keys, &kb, &vals, &J,
                          &H, &eps, &w1, &b1, &F, &w2, &b2, &eps2, &out))
        return NULL;
    if (!usable("update_cells", c, J, H, F) || N < 1 || cols < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "update_cells: sizes out of range");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    update_cells((const float *)x, cols, N, c, (const float *)keys, (const float *)kb,
                 (const float *)vals, J, H, eps, (const float *)w1, (const float *)b1, F,
                 (const float *)w2, (const float *)b2, eps2, (float *)out);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_column_mix(PyObject *self, PyObject *args)
{
    unsigned long long index, mix, vals, gate1, base, out;
    int D, N, H, c, r0, r1;
    if (!PyArg_ParseTuple(args, "KKKKKiiiiiiK", &index, &mix, &vals, &gate1, &base, &D, &N, &H,
                          &c, &r0, &r1, &out))
        return NULL;
    if (!usable("column_mix", c, 1, 1, 1) || D < 1 || H < 1 || (int64_t)H * D > MAX_HD
        || N < 1 || r0 < 0 || r1 > N || r0 > r1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "column_mix: sizes out of range");
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    column_mix((const int64_t *)index, (const float *)mix, (const float *)vals,
               (const float *)gate1, (const float *)base, D, N, H, c, r0, r1, (float *)out);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_column_moments(PyObject *self, PyObject *args)
{
    unsigned long long index, mask, q, k, out;
    int D, N, H, r0, r1;
    if (!PyArg_ParseTuple(args, "KKKKiiiiiK", &index, &mask, &q, &k, &D, &N, &H, &r0, &r1,
                          &out))
        return NULL;
    if (!usable("column_moments", 8, 1, 1, 1) || D < 1 || N < 1 || H < 1 || r0 < 0
        || r1 > N || r0 > r1) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "column_moments: sizes out of range");
        return NULL;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS
    status = column_moments((const int64_t *)index, (const uint8_t *)mask, (const float *)q,
                            (const float *)k, D, N, H, r0, r1, (float *)out);
    Py_END_ALLOW_THREADS
    if (status != 0) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *py_limits(PyObject *self, PyObject *args)
{
    return Py_BuildValue("{s:i,s:i,s:i,s:i,s:i}", "max_c", MAX_C, "max_j", MAX_J, "max_f",
                         MAX_F, "max_hd", MAX_HD, "cpu_ok", use_avx2());
}

static PyMethodDef methods[] = {
    {"read_columns", py_read_columns, METH_VARARGS, "Pool LN(cells) of each column by J "
     "base-2 softmax queries over its masked rows (see the C source)."},
    {"update_cells", py_update_cells, METH_VARARGS, "Cells read J = H * m per-column keys, "
     "then a pre-norm feed-forward layer (see the C source)."},
    {"column_mix", py_column_mix, METH_VARARGS, "Column attention's mixing of one sample's "
     "rows from per-entry tables (see the C source)."},
    {"column_moments", py_column_moments, METH_VARARGS, "Column attention's row sums of "
     "query-key products for one sample, from per-entry tables (see the C source)."},
    {"limits", py_limits, METH_NOARGS,
     "Size limits, and whether this CPU has AVX2 and FMA (cpu_ok)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "Compiled CPU kernels for the network's per-cell layers.",
    -1, methods};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
