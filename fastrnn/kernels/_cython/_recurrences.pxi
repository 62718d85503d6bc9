# The source of the Cython time loops, compiled twice by setup.py: as ``_recurrences`` for any CPU the
# compiler targets, and as ``_recurrences_avx2`` with AVX2 and FMA on x86-64. Each module is a one-line
# .pyx that includes this file; ``fastrnn.kernels._cython`` imports the one the CPU can run.
#
# Every function here has the argument list of the Numba function of the same name (shapes and
# layouts are documented there; ``out`` is batch-first (B, T, H), the rest time-major and in
# :mod:`fastrnn.kernels._driver`, which calls them): the batch is cut into ``n_chunks`` contiguous
# chunks, each chunk runs the whole time loop in its own OpenMP thread (no barrier per step), and per
# step its rows get one recurrent product and one gate pass. Pointers and C loops only inside the
# parallel region: no Python object, no GIL.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport tanh as libm_tanh
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fastrnn_openmp_enabled(void) { return 1; }
    static int fastrnn_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fastrnn_openmp_enabled(void) { return 0; }
    static int fastrnn_max_threads(void) { return 1; }
    #endif
    """
    int fastrnn_openmp_enabled() noexcept nogil
    int fastrnn_max_threads() noexcept nogil

cdef extern from *:
    """
    /* Flush denormals to zero (FTZ) and read them as zero (DAZ) inside the kernels' threads: with
       underflowing activations the SSE code otherwise ran 1.3x slower (bench/denormals.py). The
       caller's floating-point state is restored when a chunk finishes. */
    #if defined(__x86_64__) || defined(_M_X64)
    #include <xmmintrin.h>
    static unsigned int fastrnn_flush_denormals(void) {
        unsigned int previous = _mm_getcsr();
        _mm_setcsr(previous | 0x8040u);
        return previous;
    }
    static void fastrnn_restore_fp_state(unsigned int previous) { _mm_setcsr(previous); }
    #else
    static unsigned int fastrnn_flush_denormals(void) { return 0u; }
    static void fastrnn_restore_fp_state(unsigned int previous) { (void)previous; }
    #endif
    """
    unsigned int fastrnn_flush_denormals() noexcept nogil
    void fastrnn_restore_fp_state(unsigned int previous) noexcept nogil

cdef extern from *:
    """
    /* The products' inner tile for float32 when the module is compiled with AVX2 and FMA: one 16-column
       panel for four rows (or one row) with its sums in eight 8-float vector variables. GCC keeps those
       in registers; the plain C tile below, an array, it kept on the stack under AVX2 (a load and a store
       per multiply-add: the medium LSTM ran 117 ms against 61-65 with this one). Baseline builds (SSE2)
       have too few registers for eight vectors and use the plain tile. */
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__AVX2__) && defined(__FMA__)
    #define FASTRNN_VECTOR_TILE 1
    typedef float fastrnn_f32x8 __attribute__((vector_size(32)));
    typedef float fastrnn_f32x8_unaligned __attribute__((vector_size(32), aligned(4)));
    #define FASTRNN_LOAD8(p) (*(const fastrnn_f32x8_unaligned*)(p))
    #define FASTRNN_ADD8(p, v) (*(fastrnn_f32x8_unaligned*)(p) += (v))

    /* acc[r, :16] += vectors[r, :K] @ panel for r < 4; rows are acc_stride / vector_stride apart. */
    static inline void fastrnn_four_rows_times_panel_f32(float* acc, Py_ssize_t acc_stride, const float* vectors,
                                                         Py_ssize_t vector_stride, const float* panel, Py_ssize_t K) {
        const float *v0 = vectors, *v1 = vectors + vector_stride, *v2 = vectors + 2 * vector_stride,
                    *v3 = vectors + 3 * vector_stride;
        fastrnn_f32x8 lo0 = {0}, lo1 = {0}, lo2 = {0}, lo3 = {0}, hi0 = {0}, hi1 = {0}, hi2 = {0}, hi3 = {0};
        for (Py_ssize_t k = 0; k < K; k++) {
            fastrnn_f32x8 lo = FASTRNN_LOAD8(panel + 16 * k), hi = FASTRNN_LOAD8(panel + 16 * k + 8);
            lo0 += v0[k] * lo; hi0 += v0[k] * hi;
            lo1 += v1[k] * lo; hi1 += v1[k] * hi;
            lo2 += v2[k] * lo; hi2 += v2[k] * hi;
            lo3 += v3[k] * lo; hi3 += v3[k] * hi;
        }
        FASTRNN_ADD8(acc, lo0); FASTRNN_ADD8(acc + 8, hi0);
        FASTRNN_ADD8(acc + acc_stride, lo1); FASTRNN_ADD8(acc + acc_stride + 8, hi1);
        FASTRNN_ADD8(acc + 2 * acc_stride, lo2); FASTRNN_ADD8(acc + 2 * acc_stride + 8, hi2);
        FASTRNN_ADD8(acc + 3 * acc_stride, lo3); FASTRNN_ADD8(acc + 3 * acc_stride + 8, hi3);
    }

    /* acc[:16] += vector[:K] @ panel: four partial sums over k keep four independent chains per half. */
    static inline void fastrnn_one_row_times_panel_f32(float* acc, const float* vector, const float* panel,
                                                       Py_ssize_t K) {
        fastrnn_f32x8 lo0 = {0}, lo1 = {0}, lo2 = {0}, lo3 = {0}, hi0 = {0}, hi1 = {0}, hi2 = {0}, hi3 = {0};
        Py_ssize_t k = 0;
        for (; k + 4 <= K; k += 4) {
            const float* w = panel + 16 * k;
            lo0 += vector[k] * FASTRNN_LOAD8(w); hi0 += vector[k] * FASTRNN_LOAD8(w + 8);
            lo1 += vector[k + 1] * FASTRNN_LOAD8(w + 16); hi1 += vector[k + 1] * FASTRNN_LOAD8(w + 24);
            lo2 += vector[k + 2] * FASTRNN_LOAD8(w + 32); hi2 += vector[k + 2] * FASTRNN_LOAD8(w + 40);
            lo3 += vector[k + 3] * FASTRNN_LOAD8(w + 48); hi3 += vector[k + 3] * FASTRNN_LOAD8(w + 56);
        }
        for (; k < K; k++) {
            lo0 += vector[k] * FASTRNN_LOAD8(panel + 16 * k);
            hi0 += vector[k] * FASTRNN_LOAD8(panel + 16 * k + 8);
        }
        FASTRNN_ADD8(acc, (lo0 + lo1) + (lo2 + lo3));
        FASTRNN_ADD8(acc + 8, (hi0 + hi1) + (hi2 + hi3));
    }
    #else
    #define FASTRNN_VECTOR_TILE 0
    static inline void fastrnn_four_rows_times_panel_f32(float* acc, Py_ssize_t acc_stride, const float* vectors,
                                                         Py_ssize_t vector_stride, const float* panel, Py_ssize_t K) {}
    static inline void fastrnn_one_row_times_panel_f32(float* acc, const float* vector, const float* panel,
                                                       Py_ssize_t K) {}
    #endif

    /* Whether this CPU (and the operating system) runs AVX2 and FMA code: 0 off x86 or without a
       compiler that can ask (the portable module is used then). */
    static int fastrnn_cpu_has_avx2_fma(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }
    """
    int FASTRNN_VECTOR_TILE
    void fastrnn_four_rows_times_panel_f32(float* acc, Py_ssize_t acc_stride, const float* vectors,
                                           Py_ssize_t vector_stride, const float* panel, Py_ssize_t K) noexcept nogil
    void fastrnn_one_row_times_panel_f32(float* acc, const float* vector, const float* panel,
                                         Py_ssize_t K) noexcept nogil
    int fastrnn_cpu_has_avx2_fma() noexcept nogil


cdef enum:
    ROW_BLOCK = 4  # batch rows that share each weight load in the products
    PANEL = 16  # columns per packed weight panel (fastrnn.kernels._driver.PANEL)

# float32 tanh as a 13/6 rational polynomial on a clamped argument (about 3 ulp; the same
# approximation as the Numba backend): branch-free, so GCC vectorises the gate loops around it.
cdef float TANH_CLAMP = 7.90531110763549805
cdef float A1 = 4.89352455891786e-03, A3 = 6.37261928875436e-04, A5 = 1.48572235717979e-05
cdef float A7 = 5.12229709037114e-08, A9 = -8.60467152213735e-11, A11 = 2.00018790482477e-13
cdef float A13 = -2.76076847742355e-16
cdef float B0 = 4.89352518554385e-03, B2 = 2.26843463243900e-03, B4 = 1.18534705686654e-04
cdef float B6 = 1.19825839466702e-06


def openmp_enabled():
    """Whether this build runs chunks in parallel (False when the compiler had no OpenMP)."""
    return bool(fastrnn_openmp_enabled())


def max_threads():
    """OpenMP's default thread count (``OMP_NUM_THREADS`` or the cores), 1 without OpenMP."""
    return fastrnn_max_threads()


def uses_avx2():
    """Whether this module was compiled for AVX2 and FMA (its float32 products use the vector tile)."""
    return bool(FASTRNN_VECTOR_TILE)


def cpu_has_avx2_fma():
    """Whether this CPU can run the AVX2 module (asked through the compiler's CPU-feature builtin)."""
    return bool(fastrnn_cpu_has_avx2_fma())


cdef inline float tanh_f32(float x) noexcept nogil:
    cdef float x2, p, q
    x = TANH_CLAMP if x > TANH_CLAMP else x
    x = -TANH_CLAMP if x < -TANH_CLAMP else x
    x2 = x * x
    p = x2 * A13 + A11
    p = x2 * p + A9
    p = x2 * p + A7
    p = x2 * p + A5
    p = x2 * p + A3
    p = x2 * p + A1
    q = x2 * B6 + B4
    q = x2 * q + B2
    q = x2 * q + B0
    return x * p / q


cdef inline floating tanh_(floating x) noexcept nogil:
    """tanh: the rational form for float32, libm for float64 (exact to rounding)."""
    if floating is float:
        return tanh_f32(x)
    else:
        return libm_tanh(x)


cdef inline floating sigmoid_(floating x) noexcept nogil:
    """Logistic function as ``tanh(x / 2) / 2 + 1 / 2``: finite everywhere, no exp overflow."""
    cdef floating half = 0.5
    return half * tanh_(half * x) + half


cdef inline void add_rows_times_panels(floating* acc, Py_ssize_t acc_stride, const floating* vectors,
                                       Py_ssize_t vector_stride, Py_ssize_t rows, const floating* packed,
                                       Py_ssize_t P, Py_ssize_t K) noexcept nogil:
    """``acc[r, :16P] += vectors[r, :K] @ W`` for ``r < rows <= ROW_BLOCK``.

    ``packed`` (P, K, 16) holds W (K, N) in 16-column panels, N zero-padded to 16P (the layout of
    ``fastrnn.kernels._driver.pack_panels``). Rows are ``acc_stride`` / ``vector_stride`` elements
    apart. Each panel's outputs for all rows accumulate in a small local tile, so every weight load
    feeds ``rows`` multiply-adds: the C vector tiles above for float32 in the AVX2 module, else the
    array ``tile`` (which GCC may keep on the stack, as it did under AVX2).
    """
    cdef floating tile[ROW_BLOCK][PANEL]
    cdef Py_ssize_t p, k, c, r
    cdef const floating* w
    cdef floating v0, v1, v2, v3
    for p in range(P):
        if floating is float:
            if FASTRNN_VECTOR_TILE:
                if rows == ROW_BLOCK:
                    fastrnn_four_rows_times_panel_f32(acc + p * PANEL, acc_stride, vectors, vector_stride,
                                                      packed + p * K * PANEL, K)
                else:
                    for r in range(rows):
                        fastrnn_one_row_times_panel_f32(acc + r * acc_stride + p * PANEL, vectors + r * vector_stride,
                                                        packed + p * K * PANEL, K)
                continue
        memset(tile, 0, sizeof(tile))
        if rows == ROW_BLOCK:
            for k in range(K):
                w = packed + (p * K + k) * PANEL
                v0 = vectors[k]
                v1 = vectors[vector_stride + k]
                v2 = vectors[2 * vector_stride + k]
                v3 = vectors[3 * vector_stride + k]
                for c in range(PANEL):
                    tile[0][c] += v0 * w[c]
                    tile[1][c] += v1 * w[c]
                    tile[2][c] += v2 * w[c]
                    tile[3][c] += v3 * w[c]
        elif rows == 1:
            # One row has no reuse to hide the add latency: four partial sums over k, in the spare
            # tile rows, keep four independent chains in flight.
            w = packed + p * K * PANEL
            k = 0
            while k + 4 <= K:
                v0, v1, v2, v3 = vectors[k], vectors[k + 1], vectors[k + 2], vectors[k + 3]
                for c in range(PANEL):
                    tile[0][c] += v0 * w[c]
                    tile[1][c] += v1 * w[PANEL + c]
                    tile[2][c] += v2 * w[2 * PANEL + c]
                    tile[3][c] += v3 * w[3 * PANEL + c]
                w += 4 * PANEL
                k += 4
            while k < K:
                v0 = vectors[k]
                for c in range(PANEL):
                    tile[0][c] += v0 * w[c]
                w += PANEL
                k += 1
            for c in range(PANEL):
                tile[0][c] += (tile[1][c] + tile[2][c]) + tile[3][c]
        else:
            for r in range(rows):
                for k in range(K):
                    w = packed + (p * K + k) * PANEL
                    v0 = vectors[r * vector_stride + k]
                    for c in range(PANEL):
                        tile[r][c] += v0 * w[c]
        for r in range(rows):
            for c in range(PANEL):
                acc[r * acc_stride + p * PANEL + c] += tile[r][c]


cdef inline floating* data_or_null(floating[:, :, ::1] array) noexcept nogil:
    """The first element of a (T, B, N) buffer, or NULL for the empty buffers of inference mode."""
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        return NULL
    return &array[0, 0, 0]


# ------------------------------------------------------------------------------------------- LSTM
cdef int lstm_forward_chunk(const floating* x, const int64_t* lengths, const floating* packed_w, Py_ssize_t P,
                            const floating* bias, const floating* h0, const floating* c0, floating* out,
                            floating* h_n, floating* c_n, floating* gates, floating* tanh_c, floating* c_states,
                            bint save, Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t first,
                            Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t G = 4 * H, K = I + H, N = P * PANEL, n = last - first, t, r0, r, rows, b, j, at
    cdef floating* xh = <floating*> malloc(n * K * sizeof(floating))  # [x_t | h_{t-1}] per row
    cdef floating* c = <floating*> malloc(n * H * sizeof(floating))
    cdef floating* acc = <floating*> malloc(ROW_BLOCK * N * sizeof(floating))
    cdef floating* tc = <floating*> malloc(H * sizeof(floating))
    cdef floating *a
    cdef floating *c_row
    cdef floating *h_row
    if xh == NULL or c == NULL or acc == NULL or tc == NULL:
        free(xh); free(c); free(acc); free(tc)
        return 1
    for r in range(n):
        memcpy(xh + r * K + I, h0 + (first + r) * H, H * sizeof(floating))
    memcpy(c, c0 + first * H, n * H * sizeof(floating))
    for t in range(T):
        for r in range(n):
            memcpy(xh + r * K, x + ((first + r) * T + t) * I, I * sizeof(floating))
        r0 = 0
        while r0 < n:
            rows = min(ROW_BLOCK, n - r0)
            for r in range(rows):
                memcpy(acc + r * N, bias, N * sizeof(floating))
            add_rows_times_panels(acc, N, xh + r0 * K, K, rows, packed_w, P, K)
            for r in range(rows):
                b = first + r0 + r
                if t >= lengths[b]:
                    continue
                a = acc + r * N
                for j in range(2 * H):  # i and f
                    a[j] = sigmoid_(a[j])
                for j in range(2 * H, 3 * H):  # g
                    a[j] = tanh_(a[j])
                for j in range(3 * H, G):  # o
                    a[j] = sigmoid_(a[j])
                c_row, h_row = c + (r0 + r) * H, xh + (r0 + r) * K + I
                for j in range(H):
                    c_row[j] = a[H + j] * c_row[j] + a[j] * a[2 * H + j]
                for j in range(H):
                    tc[j] = tanh_(c_row[j])
                for j in range(H):
                    h_row[j] = a[3 * H + j] * tc[j]
                at = t * B + b
                memcpy(out + (b * T + t) * H, h_row, H * sizeof(floating))
                if save:
                    memcpy(gates + at * G, a, G * sizeof(floating))
                    memcpy(tanh_c + at * H, tc, H * sizeof(floating))
                    memcpy(c_states + at * H, c_row, H * sizeof(floating))
            r0 += rows
    for r in range(n):
        memcpy(h_n + (first + r) * H, xh + r * K + I, H * sizeof(floating))
    memcpy(c_n + first * H, c, n * H * sizeof(floating))
    free(xh); free(c); free(acc); free(tc)
    return 0


def lstm_forward_recurrence(const floating[:, :, ::1] x, const int64_t[::1] lengths,
                            const floating[:, :, ::1] packed_w, const floating[::1] bias, const floating[:, ::1] h0,
                            const floating[:, ::1] c0, floating[:, :, ::1] out, floating[:, ::1] h_n,
                            floating[:, ::1] c_n, floating[:, :, ::1] gates, floating[:, :, ::1] tanh_c,
                            floating[:, :, ::1] c_states, bint save, int n_chunks):
    """Run the LSTM over all steps (see ``fastrnn.kernels._numba.lstm.lstm_forward_recurrence``)."""
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], I = x.shape[2], H = h0.shape[1], P = packed_w.shape[0]
    cdef int chunk, failures = 0
    cdef unsigned int fp_state = 0
    cdef floating* gates_data = data_or_null(gates)
    cdef floating* tanh_c_data = data_or_null(tanh_c)
    cdef floating* c_states_data = data_or_null(c_states)
    if save and (gates_data == NULL or tanh_c_data == NULL or c_states_data == NULL):
        raise ValueError("save=True needs (T, B, 4H) and (T, B, H) buffers for the gates, tanh(c) and c")
    with nogil:
        for chunk in prange(n_chunks, num_threads=n_chunks, schedule="static", chunksize=1):
            fp_state = fastrnn_flush_denormals()
            failures += lstm_forward_chunk(&x[0, 0, 0], &lengths[0], &packed_w[0, 0, 0], P, &bias[0], &h0[0, 0],
                                           &c0[0, 0], &out[0, 0, 0], &h_n[0, 0], &c_n[0, 0], gates_data,
                                           tanh_c_data, c_states_data, save, T, B, I, H, chunk * B // n_chunks,
                                           (chunk + 1) * B // n_chunks)
            fastrnn_restore_fp_state(fp_state)
    if failures:
        raise MemoryError("the LSTM kernel could not allocate its per-thread buffers")


cdef int lstm_backward_chunk(const floating* grad_out, const int64_t* lengths, const floating* packed_w_hh,
                             Py_ssize_t P,
                             const floating* c0, const floating* gates, const floating* tanh_c,
                             const floating* c_states, floating* dh, floating* dc, floating* d_pre,
                             Py_ssize_t T, Py_ssize_t B, Py_ssize_t H, Py_ssize_t first,
                             Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t G = 4 * H, n = last - first, t, r0, r, rows, b, j, at
    cdef floating one = 1, i_g, f_g, g_g, o_g, dh_t, dc_t
    cdef floating* acc = <floating*> malloc(ROW_BLOCK * P * PANEL * sizeof(floating))
    cdef const floating *g
    cdef const floating *tc
    cdef const floating *go
    cdef const floating *c_prev
    cdef floating *dp
    cdef floating *dh_row
    cdef floating *dc_row
    if acc == NULL:
        return 1
    for t in range(T - 1, -1, -1):
        r0 = 0
        while r0 < n:
            rows = min(ROW_BLOCK, n - r0)
            for r in range(rows):
                b = first + r0 + r
                if t >= lengths[b]:
                    continue
                at = t * B + b
                g, tc, go, dp = gates + at * G, tanh_c + at * H, grad_out + (b * T + t) * H, d_pre + at * G
                c_prev = c_states + (at - B) * H if t > 0 else c0 + b * H
                dh_row, dc_row = dh + b * H, dc + b * H
                for j in range(H):
                    i_g, f_g, g_g, o_g = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
                    dh_t = dh_row[j] + go[j]
                    dc_t = dc_row[j] + dh_t * o_g * (one - tc[j] * tc[j])
                    dp[j] = dc_t * g_g * i_g * (one - i_g)
                    dp[H + j] = dc_t * c_prev[j] * f_g * (one - f_g)
                    dp[2 * H + j] = dc_t * i_g * (one - g_g * g_g)
                    dp[3 * H + j] = dh_t * tc[j] * o_g * (one - o_g)
                    dc_row[j] = dc_t * f_g
            memset(acc, 0, rows * P * PANEL * sizeof(floating))
            add_rows_times_panels(acc, P * PANEL, d_pre + (t * B + first + r0) * G, G, rows, packed_w_hh, P, G)
            for r in range(rows):
                b = first + r0 + r
                if t < lengths[b]:
                    memcpy(dh + b * H, acc + r * P * PANEL, H * sizeof(floating))
            r0 += ROW_BLOCK
    free(acc)
    return 0


def lstm_backward_recurrence(const floating[:, :, ::1] grad_out, const int64_t[::1] lengths,
                             const floating[:, :, ::1] packed_w_hh, const floating[:, ::1] c0,
                             const floating[:, :, ::1] gates, const floating[:, :, ::1] tanh_c,
                             const floating[:, :, ::1] c_states, floating[:, ::1] dh, floating[:, ::1] dc,
                             floating[:, :, ::1] d_pre, int n_chunks):
    """Back-propagate through the LSTM time loop (see the Numba ``lstm_backward_recurrence``)."""
    cdef Py_ssize_t B = grad_out.shape[0], T = grad_out.shape[1], H = grad_out.shape[2]
    cdef int chunk, failures = 0
    cdef unsigned int fp_state = 0
    with nogil:
        for chunk in prange(n_chunks, num_threads=n_chunks, schedule="static", chunksize=1):
            fp_state = fastrnn_flush_denormals()
            failures += lstm_backward_chunk(&grad_out[0, 0, 0], &lengths[0], &packed_w_hh[0, 0, 0], packed_w_hh.shape[0], &c0[0, 0],
                                            &gates[0, 0, 0], &tanh_c[0, 0, 0], &c_states[0, 0, 0], &dh[0, 0],
                                            &dc[0, 0], &d_pre[0, 0, 0], T, B, H, chunk * B // n_chunks,
                                            (chunk + 1) * B // n_chunks)
            fastrnn_restore_fp_state(fp_state)
    if failures:
        raise MemoryError("the LSTM kernel could not allocate its per-thread buffers")


# -------------------------------------------------------------------------------------------- GRU
cdef int gru_forward_chunk(const floating* x, const int64_t* lengths, const floating* packed_ih,
                           const floating* b_ih, const floating* packed_hh, const floating* b_hh, Py_ssize_t P,
                           const floating* h0, floating* out, floating* h_n, floating* gates, floating* hidden_n,
                           bint save, Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t first,
                           Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t G = 3 * H, K = I + H, N = P * PANEL, n = last - first, t, r0, r, rows, b, j, at
    cdef floating one = 1
    cdef floating* xh = <floating*> malloc(n * K * sizeof(floating))  # [x_t | h_{t-1}] per row
    cdef floating* from_x = <floating*> malloc(ROW_BLOCK * N * sizeof(floating))
    cdef floating* from_h = <floating*> malloc(ROW_BLOCK * N * sizeof(floating))
    cdef floating *a
    cdef floating *x_part
    cdef floating *h_row
    if xh == NULL or from_x == NULL or from_h == NULL:
        free(xh); free(from_x); free(from_h)
        return 1
    for r in range(n):
        memcpy(xh + r * K + I, h0 + (first + r) * H, H * sizeof(floating))
    for t in range(T):
        for r in range(n):
            memcpy(xh + r * K, x + ((first + r) * T + t) * I, I * sizeof(floating))
        r0 = 0
        while r0 < n:
            rows = min(ROW_BLOCK, n - r0)
            for r in range(rows):
                memcpy(from_x + r * N, b_ih, N * sizeof(floating))
                memcpy(from_h + r * N, b_hh, N * sizeof(floating))
            add_rows_times_panels(from_x, N, xh + r0 * K, K, rows, packed_ih, P, I)
            add_rows_times_panels(from_h, N, xh + r0 * K + I, K, rows, packed_hh, P, H)
            for r in range(rows):
                b = first + r0 + r
                if t >= lengths[b]:
                    continue
                at = t * B + b
                a, x_part, h_row = from_h + r * N, from_x + r * N, xh + (r0 + r) * K + I
                if save:
                    memcpy(hidden_n + at * H, a + 2 * H, H * sizeof(floating))
                for j in range(2 * H):  # r and z
                    a[j] = sigmoid_(x_part[j] + a[j])
                for j in range(H):
                    a[2 * H + j] = tanh_(x_part[2 * H + j] + a[j] * a[2 * H + j])
                for j in range(H):
                    h_row[j] = (one - a[H + j]) * a[2 * H + j] + a[H + j] * h_row[j]
                memcpy(out + (b * T + t) * H, h_row, H * sizeof(floating))
                if save:
                    memcpy(gates + at * G, a, G * sizeof(floating))
            r0 += rows
    for r in range(n):
        memcpy(h_n + (first + r) * H, xh + r * K + I, H * sizeof(floating))
    free(xh); free(from_x); free(from_h)
    return 0


def gru_forward_recurrence(const floating[:, :, ::1] x, const int64_t[::1] lengths,
                           const floating[:, :, ::1] packed_ih, const floating[::1] b_ih,
                           const floating[:, :, ::1] packed_hh, const floating[::1] b_hh, const floating[:, ::1] h0,
                           floating[:, :, ::1] out, floating[:, ::1] h_n, floating[:, :, ::1] gates,
                           floating[:, :, ::1] hidden_n, bint save, int n_chunks):
    """Run the GRU over all steps (see ``fastrnn.kernels._numba.gru.gru_forward_recurrence``)."""
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], I = x.shape[2], H = h0.shape[1], P = packed_ih.shape[0]
    cdef int chunk, failures = 0
    cdef unsigned int fp_state = 0
    cdef floating* gates_data = data_or_null(gates)
    cdef floating* hidden_n_data = data_or_null(hidden_n)
    if save and (gates_data == NULL or hidden_n_data == NULL):
        raise ValueError("save=True needs (T, B, 3H) and (T, B, H) buffers")
    with nogil:
        for chunk in prange(n_chunks, num_threads=n_chunks, schedule="static", chunksize=1):
            fp_state = fastrnn_flush_denormals()
            failures += gru_forward_chunk(&x[0, 0, 0], &lengths[0], &packed_ih[0, 0, 0], &b_ih[0],
                                          &packed_hh[0, 0, 0], &b_hh[0], P, &h0[0, 0], &out[0, 0, 0], &h_n[0, 0],
                                          gates_data, hidden_n_data, save, T, B, I, H, chunk * B // n_chunks,
                                          (chunk + 1) * B // n_chunks)
            fastrnn_restore_fp_state(fp_state)
    if failures:
        raise MemoryError("the GRU kernel could not allocate its per-thread buffers")


cdef int gru_backward_chunk(const floating* grad_out, const int64_t* lengths, const floating* packed_w_hh,
                            Py_ssize_t P,
                            const floating* h0, const floating* out, const floating* gates,
                            const floating* hidden_n, floating* dh, floating* dn_from_x, floating* d_from_h,
                            Py_ssize_t T, Py_ssize_t B, Py_ssize_t H, Py_ssize_t first,
                            Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t G = 3 * H, n = last - first, t, r0, r, rows, b, j, at
    cdef floating one = 1, r_g, z_g, n_g, dh_t, dn_pre, dz_pre, dr_pre
    cdef floating* acc = <floating*> malloc(ROW_BLOCK * P * PANEL * sizeof(floating))
    cdef const floating *g
    cdef const floating *hn
    cdef const floating *go
    cdef const floating *h_prev
    cdef floating *dnx
    cdef floating *dhh
    cdef floating *dh_row
    if acc == NULL:
        return 1
    for t in range(T - 1, -1, -1):
        r0 = 0
        while r0 < n:
            rows = min(ROW_BLOCK, n - r0)
            for r in range(rows):
                b = first + r0 + r
                if t >= lengths[b]:
                    continue
                at = t * B + b
                g, hn, go = gates + at * G, hidden_n + at * H, grad_out + (b * T + t) * H
                h_prev = out + (b * T + t - 1) * H if t > 0 else h0 + b * H
                dnx, dhh, dh_row = dn_from_x + at * H, d_from_h + at * G, dh + b * H
                for j in range(H):
                    r_g, z_g, n_g = g[j], g[H + j], g[2 * H + j]
                    dh_t = dh_row[j] + go[j]
                    dn_pre = dh_t * (one - z_g) * (one - n_g * n_g)
                    dz_pre = dh_t * (h_prev[j] - n_g) * z_g * (one - z_g)
                    dr_pre = dn_pre * hn[j] * r_g * (one - r_g)
                    dnx[j] = dn_pre
                    dhh[j] = dr_pre
                    dhh[H + j] = dz_pre
                    dhh[2 * H + j] = dn_pre * r_g
                    dh_row[j] = dh_t * z_g  # the direct path; the product is added below
            memset(acc, 0, rows * P * PANEL * sizeof(floating))
            add_rows_times_panels(acc, P * PANEL, d_from_h + (t * B + first + r0) * G, G, rows, packed_w_hh, P, G)
            for r in range(rows):
                b = first + r0 + r
                if t < lengths[b]:
                    for j in range(H):
                        dh[b * H + j] += acc[r * P * PANEL + j]
            r0 += ROW_BLOCK
    free(acc)
    return 0


def gru_backward_recurrence(const floating[:, :, ::1] grad_out, const int64_t[::1] lengths,
                            const floating[:, :, ::1] packed_w_hh, const floating[:, ::1] h0,
                            const floating[:, :, ::1] out,
                            const floating[:, :, ::1] gates, const floating[:, :, ::1] hidden_n,
                            floating[:, ::1] dh, floating[:, :, ::1] dn_from_x, floating[:, :, ::1] d_from_h,
                            int n_chunks):
    """Back-propagate through the GRU time loop (see the Numba ``gru_backward_recurrence``)."""
    cdef Py_ssize_t B = grad_out.shape[0], T = grad_out.shape[1], H = grad_out.shape[2]
    cdef int chunk, failures = 0
    cdef unsigned int fp_state = 0
    with nogil:
        for chunk in prange(n_chunks, num_threads=n_chunks, schedule="static", chunksize=1):
            fp_state = fastrnn_flush_denormals()
            failures += gru_backward_chunk(&grad_out[0, 0, 0], &lengths[0], &packed_w_hh[0, 0, 0], packed_w_hh.shape[0], &h0[0, 0], &out[0, 0, 0],
                                           &gates[0, 0, 0], &hidden_n[0, 0, 0], &dh[0, 0], &dn_from_x[0, 0, 0],
                                           &d_from_h[0, 0, 0], T, B, H, chunk * B // n_chunks,
                                           (chunk + 1) * B // n_chunks)
            fastrnn_restore_fp_state(fp_state)
    if failures:
        raise MemoryError("the GRU kernel could not allocate its per-thread buffers")


# ------------------------------------------------------------------------------------ vanilla RNN
cdef int rnn_forward_chunk(const floating* x, const int64_t* lengths, const floating* packed_w, Py_ssize_t P,
                           const floating* bias, const floating* h0, floating* out, floating* h_n, bint relu,
                           Py_ssize_t T, Py_ssize_t B, Py_ssize_t I, Py_ssize_t H, Py_ssize_t first,
                           Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t K = I + H, N = P * PANEL, n = last - first, t, r0, r, rows, b, j
    cdef floating zero = 0
    cdef floating* xh = <floating*> malloc(n * K * sizeof(floating))  # [x_t | h_{t-1}] per row
    cdef floating* acc = <floating*> malloc(ROW_BLOCK * N * sizeof(floating))
    cdef floating *a
    cdef floating *h_row
    if xh == NULL or acc == NULL:
        free(xh); free(acc)
        return 1
    for r in range(n):
        memcpy(xh + r * K + I, h0 + (first + r) * H, H * sizeof(floating))
    for t in range(T):
        for r in range(n):
            memcpy(xh + r * K, x + ((first + r) * T + t) * I, I * sizeof(floating))
        r0 = 0
        while r0 < n:
            rows = min(ROW_BLOCK, n - r0)
            for r in range(rows):
                memcpy(acc + r * N, bias, N * sizeof(floating))
            add_rows_times_panels(acc, N, xh + r0 * K, K, rows, packed_w, P, K)
            for r in range(rows):
                b = first + r0 + r
                if t >= lengths[b]:
                    continue
                a, h_row = acc + r * N, xh + (r0 + r) * K + I
                if relu:
                    for j in range(H):
                        h_row[j] = a[j] if a[j] > zero else zero
                else:
                    for j in range(H):
                        h_row[j] = tanh_(a[j])
                memcpy(out + (b * T + t) * H, h_row, H * sizeof(floating))
            r0 += rows
    for r in range(n):
        memcpy(h_n + (first + r) * H, xh + r * K + I, H * sizeof(floating))
    free(xh); free(acc)
    return 0


def rnn_forward_recurrence(const floating[:, :, ::1] x, const int64_t[::1] lengths,
                           const floating[:, :, ::1] packed_w, const floating[::1] bias, const floating[:, ::1] h0,
                           floating[:, :, ::1] out, floating[:, ::1] h_n, bint relu, int n_chunks):
    """Run the RNN over all steps (see ``fastrnn.kernels._numba.rnn.rnn_forward_recurrence``)."""
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], I = x.shape[2], H = h0.shape[1], P = packed_w.shape[0]
    cdef int chunk, failures = 0
    cdef unsigned int fp_state = 0
    with nogil:
        for chunk in prange(n_chunks, num_threads=n_chunks, schedule="static", chunksize=1):
            fp_state = fastrnn_flush_denormals()
            failures += rnn_forward_chunk(&x[0, 0, 0], &lengths[0], &packed_w[0, 0, 0], P, &bias[0], &h0[0, 0],
                                          &out[0, 0, 0], &h_n[0, 0], relu, T, B, I, H, chunk * B // n_chunks,
                                          (chunk + 1) * B // n_chunks)
            fastrnn_restore_fp_state(fp_state)
    if failures:
        raise MemoryError("the RNN kernel could not allocate its per-thread buffers")


cdef int rnn_backward_chunk(const floating* grad_out, const int64_t* lengths, const floating* packed_w_hh,
                            Py_ssize_t P,
                            const floating* out, floating* dh, floating* d_pre, bint relu, Py_ssize_t T,
                            Py_ssize_t B, Py_ssize_t H, Py_ssize_t first, Py_ssize_t last) noexcept nogil:
    cdef Py_ssize_t n = last - first, t, r0, r, rows, b, j, at
    cdef floating one = 1, zero = 0
    cdef floating* acc = <floating*> malloc(ROW_BLOCK * P * PANEL * sizeof(floating))
    cdef const floating *h_t
    cdef const floating *go
    cdef floating *dp
    cdef floating *dh_row
    if acc == NULL:
        return 1
    for t in range(T - 1, -1, -1):
        r0 = 0
        while r0 < n:
            rows = min(ROW_BLOCK, n - r0)
            for r in range(rows):
                b = first + r0 + r
                if t >= lengths[b]:
                    continue
                at = t * B + b
                h_t, go, dp, dh_row = out + (b * T + t) * H, grad_out + (b * T + t) * H, d_pre + at * H, dh + b * H
                if relu:
                    for j in range(H):
                        dp[j] = (dh_row[j] + go[j]) if h_t[j] > zero else zero
                else:
                    for j in range(H):
                        dp[j] = (dh_row[j] + go[j]) * (one - h_t[j] * h_t[j])
            memset(acc, 0, rows * P * PANEL * sizeof(floating))
            add_rows_times_panels(acc, P * PANEL, d_pre + (t * B + first + r0) * H, H, rows, packed_w_hh, P, H)
            for r in range(rows):
                b = first + r0 + r
                if t < lengths[b]:
                    memcpy(dh + b * H, acc + r * P * PANEL, H * sizeof(floating))
            r0 += ROW_BLOCK
    free(acc)
    return 0


def rnn_backward_recurrence(const floating[:, :, ::1] grad_out, const int64_t[::1] lengths,
                            const floating[:, :, ::1] packed_w_hh, const floating[:, :, ::1] out, floating[:, ::1] dh,
                            floating[:, :, ::1] d_pre, bint relu, int n_chunks):
    """Back-propagate through the RNN time loop (see the Numba ``rnn_backward_recurrence``)."""
    cdef Py_ssize_t B = grad_out.shape[0], T = grad_out.shape[1], H = grad_out.shape[2]
    cdef int chunk, failures = 0
    cdef unsigned int fp_state = 0
    with nogil:
        for chunk in prange(n_chunks, num_threads=n_chunks, schedule="static", chunksize=1):
            fp_state = fastrnn_flush_denormals()
            failures += rnn_backward_chunk(&grad_out[0, 0, 0], &lengths[0], &packed_w_hh[0, 0, 0], packed_w_hh.shape[0], &out[0, 0, 0], &dh[0, 0],
                                           &d_pre[0, 0, 0], relu, T, B, H, chunk * B // n_chunks,
                                           (chunk + 1) * B // n_chunks)
            fastrnn_restore_fp_state(fp_state)
    if failures:
        raise MemoryError("the RNN kernel could not allocate its per-thread buffers")
