"""The Python half of every compiled backend: buffers, packed weights, the gradient GEMMs, and the
call into the time loop.

A compiled backend (Numba, Cython) provides only the six recurrence functions — the time loops, with
the argument lists documented on the Numba versions in :mod:`fastrnn.kernels._numba` — and a
``chunk_count(batch)`` that says how many batch chunks run in parallel. :class:`FusedKernels` turns
them into the ``{cell}_forward`` / ``{cell}_backward`` functions of the kernel contract
(:mod:`fastrnn.kernels.reference`). Forward runs inside the backend's threads, the input projection
part of each step's product, except for wide inputs on a backend that takes them projected: then one
GEMM here projects all steps first (:func:`projected_inputs`). After a backward loop the weight and input
gradients are GEMMs here. These GEMMs run on Python threads with single-threaded BLAS, so no BLAS
thread pool competes with the backend's threads (:mod:`._split_gemm`), except for the gradients on the
Numba GEMM: those run on the OpenMP threads themselves (:mod:`._numba.gradients`).
"""
import contextlib

import numpy as np

from ._aligned import empty_aligned
from ._gemm import matmul, numba_gradients
from ._split_gemm import parts_for, row_bounds, run_parts

PANEL = 16  # columns per packed weight panel (the tile width of the kernels)
TILE_ROWS = 4  # batch rows that share one pass over the packed weights (both backends' tiles)
# Splitting a batch over threads must save more weight streaming than waking a sleeping worker costs:
# 15-40 us here, the time to stream about 3 MB of packed weights from cache. Below that one thread runs
# the batch. Measured, 2 threads -> 1, LSTM inference: B4 T100 H64 307 -> 245 us, B4 T20 H64 127 -> 80,
# B2 T10 H64 66 -> 58 (each thread's two rows took two passes over the weights per step, as many as
# one thread's four); B2 T100 H128 stays split (424 us against 641 on one thread).
MIN_WEIGHT_BYTES_SAVED_TO_SPLIT_BATCH = 3 << 20
# Below this much packed weight, handing half the packing to a helper thread (40-50 us) saves nothing.
MIN_BYTES_TO_SPLIT = 2 << 20
# For inputs at least this wide, and weights of at least this many bytes, a backend that can
# (``FusedKernels(projects_inputs=True)``) projects the inputs of all steps in one GEMM before the time
# loop, whose steps then stream only W_hh. The large shape's weights (8 MB LSTM, 6 MB GRU) were projected
# once, measured on an Intel Xeon (projected/fused 0.80 in inference) while the fused step's [x | h] rows,
# 4 KiB long there, ran the group tile with all 16 reads of a step in one L1 set. With those rows padded
# (``_copy.padded_row_length``), on an AMD Zen 5 (paired A/B, 2 threads, median time ratio fused over
# projected): large LSTM inference 0.84, training 0.96; GRU 0.87 and 0.99. Weights that fit in the
# last-level cache stream from it cheaply enough, so only weights beyond a typical L3 share are projected
# (not measured: no standard shape has them).
MIN_INPUT_TO_PROJECT = 128
MIN_WEIGHT_BYTES_TO_PROJECT = 32 << 20


def pack_panels(*blocks, threads=1, contiguous_packer=None, parallel_packer=None):
    """Stack weight blocks side by side and pack their transpose into 16-column panels.

    Each block is (N, K_i) as stored (rows are gate units); the packed result is (ceil(N / 16), sum K_i,
    16) with ``packed[p, k, c] = concat(blocks, axis=1)[16 p + c, k]`` and zero rows for the padding:
    the layout the kernels' tiles read. One pass of transposing copies per block, by
    ``contiguous_packer(block, packed, offset)`` (a backend's, see ``FusedKernels(pack_block=...)``) for
    C-contiguous blocks where given, else by the Cython loop where it is built, else by NumPy. With a
    compiled packer and at least :data:`MIN_BYTES_TO_SPLIT` of weights, ``threads`` threads pack a range
    of panels each (the large shape's 8 MB on the Cython loop: 0.85-1.2 ms on one thread, 0.55-0.7 on two):
    on the OpenMP threads by ``parallel_packer(first, second, packed, parts)`` where given (one or two
    blocks of any strides; see ``_numba._copy.pack_panels_in_parts``), else on Python threads.
    """
    N = blocks[0].shape[0]
    panels = -(-N // PANEL)
    packed = empty_aligned((panels, sum(b.shape[1] for b in blocks), PANEL), blocks[0].dtype)  # see _aligned
    if N % PANEL:
        packed[-1] = 0  # the padding columns; every other element is written below (zeroing all cost ~0.3 ms at 8 MB)
    if (parallel_packer is not None and len(blocks) <= 2 and threads > 1 and packed.nbytes >= MIN_BYTES_TO_SPLIT
            and all(block.dtype == packed.dtype for block in blocks)):
        parallel_packer(blocks[0], blocks[-1] if len(blocks) == 2 else blocks[0][:, :0], packed, threads)
        return packed
    compiled = _compiled_packing()
    packers = [contiguous_packer if contiguous_packer is not None and block.flags.c_contiguous else compiled
               for block in blocks]
    if all(packer is not None for packer in packers):
        parts = threads if packed.nbytes >= MIN_BYTES_TO_SPLIT else 1
        bounds = row_bounds(panels, parts)

        def pack_part(k):
            first, last = bounds[k]
            offset = 0
            for block, packer in zip(blocks, packers):
                packer(block[first * PANEL:last * PANEL], packed[first:last], offset)
                offset += block.shape[1]

        if parts > 1:
            run_parts(pack_part, parts)
        else:
            pack_part(0)
        return packed
    full, offset = N // PANEL, 0
    for block in blocks:
        K = block.shape[1]
        packed[:full, offset:offset + K, :] = block[:full * PANEL].reshape(full, PANEL, K).transpose(0, 2, 1)
        if full < panels:
            packed[full, offset:offset + K, :N - full * PANEL] = block[full * PANEL:].T
        offset += K
    return packed


_packing = []


def _compiled_packing():
    """The Cython packing loop when the extension is built, else None (NumPy packs instead).

    Imported on first use, not with this module: the extension must not load before
    :mod:`fastrnn.kernels._openmp` has chosen the OpenMP wait policy.
    """
    if not _packing:
        try:
            from ._cython._packing import pack_block
        except ImportError:
            pack_block = None
        _packing.append(pack_block)
    return _packing[0]


def _padded(vector):
    out = np.zeros(-(-vector.shape[0] // PANEL) * PANEL, dtype=vector.dtype)
    out[:vector.shape[0]] = vector
    return out


def _zeros_or_copy(grad, like):
    return np.zeros_like(like) if grad is None else np.array(grad, dtype=like.dtype)


def _filled_by_loop(shape, lengths, steps, dtype):
    """A buffer the time loop writes at every (step, row) a sequence is still running: left
    uninitialised when every sequence runs all ``steps`` (zeroing 26 MB of a medium LSTM layer's
    ``d_pre`` cost about 1 ms for nothing), zero-filled otherwise, since finished rows must read zero."""
    return np.empty(shape, dtype) if int(lengths.min()) >= steps else np.zeros(shape, dtype)


def _saved(shape, need_grad, dtype):
    return np.empty(shape if need_grad else (0,) * len(shape), dtype)


def _batch_first(x, dtype=None):
    """``x`` (T, B, F) as the (B, T, F) C-contiguous array the kernels read (inputs, gradients at the
    outputs): no copy when ``x`` is a time-major view of batch-first memory, as the layers pass it."""
    return np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype)


def _stacked_inputs(x, h0):
    """``xh (T+1, B, I+H)`` for the column-split kernels: ``x_t`` in ``xh[t, :, :I]``, ``h0`` in
    ``xh[0, :, I:]``; the kernels write ``h_t`` into ``xh[t+1, :, I:]``."""
    T, B, I = x.shape
    xh = np.empty((T + 1, B, I + h0.shape[1]), dtype=x.dtype)
    xh[:T, :, :I] = x
    xh[T, :, :I] = 0
    xh[0, :, I:] = h0
    return xh


def _gradient_operands(x, out, h0, steps=None):
    """``(T'*B, I+1+H)``: ``[x_t | 1 | h_{t-1}]`` for every (step, row) of ``steps`` (a slice; all by
    default), time-major.

    One product ``d_pre^T @ operands`` gives the input weights', the bias's and the recurrent weights'
    gradients together: a separate product with the I=64 input alone ran at 74 instead of 95 GFLOP/s,
    and the bias's column sum was one more pass over all of ``d_pre`` (measured on the medium shape).
    The column slices ``[:, :I+1]`` and ``[:, I:]`` pair each side with the ones column on its own.
    """
    T, B, I = x.shape
    H = out.shape[2]
    first, stop, _ = (steps or slice(0, T)).indices(T)
    operands = np.empty((stop - first, B, I + 1 + H), dtype=x.dtype)
    operands[:, :, :I] = x[first:stop]
    operands[:, :, I] = 1
    if first == 0:
        operands[0, :, I + 1:] = h0  # state entering each step; rows past their end get zero gradient
        operands[1:, :, I + 1:] = out[:stop - 1]
    else:
        operands[:, :, I + 1:] = out[first - 1:stop - 1]
    return operands.reshape((stop - first) * B, I + 1 + H)


# Split the weight-gradient product over the steps (each part builds and reads only its own operands and
# rows of d_pre; the partial sums are added at the end) when there are this many (step, row) pairs per
# gate column or more; below, split the gate rows (each part reads all the operands). Measured on 2
# cores, the GEMMs alone: small shape (12.5 pairs per gate column) 0.73 -> 0.70 ms, infer_batch (200)
# 88.7 -> 85.6 ms; the other way for the medium shape's layers (6.25: 21.8 -> 23.0 ms) and large (0.8:
# 32.9 -> 41.4 ms). Whole training steps: small GRU 2.44-2.49 -> 2.23-2.29 ms, small LSTM 2.80-2.86 ->
# 2.75-2.81, infer_batch GRU 292-300 -> 267-268, LSTM 337-338 -> 320-322.
MIN_ROWS_PER_GATE_COLUMN_TO_SPLIT_STEPS = 10


def gate_row_blocks(G, split, parts):
    """``parts`` blocks of the gate rows ``range(G)``, each ``(a, b, n0, n1)``: rows ``a:b`` of those below
    ``split``, whose gradient both sides share, and ``n0:n1`` of those above (GRU's n gate, whose sides
    have a product each, with a packing of its rows and a result copy each). Every part gets an equal share
    of each kind. With one contiguous cut, the part holding the n gate took 1.07-1.19x as long as the other
    (one thread each, before the parts shared one packing of the operands: large GRU 14.5 vs 13.5 ms, medium
    15.5 vs 13.2 ms); with equal shares and the shared packing, 13.4 and 13.5 ms for both."""
    return [(a, b, split + n0, split + n1)
            for (a, b), (n0, n1) in zip(row_bounds(split, parts), row_bounds(G - split, parts))]


def weight_and_input_gradients(x, out, h0, w_ih, d_pre, threads=1, d_pre_x_tail=None, need_grad_x=True):
    """The GEMMs after a backward time loop, split over ``threads``: on the OpenMP threads where float32
    products run on the Numba GEMM (:mod:`._numba.gradients`), else on Python threads (:mod:`._split_gemm`).

    ``out`` (T, B, H) may be a view. ``d_pre`` (T, B, G*H) is the gradient at the gate
    pre-activations, which both projections share, except for GRU's n gate, where ``r`` scales only
    the recurrent side: then ``d_pre`` holds the recurrent side and ``d_pre_x_tail`` (T, B, H) the
    input side's last H columns. Returns ``(grad_x, (gw_ih, gw_hh, gb_ih, gb_hh))``; ``grad_x`` is None
    when ``need_grad_x`` is False (a bottom layer fed with data: its product with ``W_ih`` is skipped).
    """
    T, B, I = x.shape
    H = out.shape[2]
    d2 = d_pre.reshape(T * B, -1)
    G = d2.shape[1]
    split = G if d_pre_x_tail is None else G - H  # columns of d_pre that the input side shares
    tail2 = None if d_pre_x_tail is None else d_pre_x_tail.reshape(T * B, H)
    grad_x = np.empty((T * B, I), dtype=x.dtype) if need_grad_x else None
    compiled = numba_gradients() if x.dtype == np.float32 else None
    # On the OpenMP threads, still spinning after the backward loop, a part is handed over in a few us: even
    # a 1 MFLOP product paid for the split there (28.6 -> 24.6 us; B=1 H=128 LSTM 154 -> 95 us, Zen 5).
    parts = threads if compiled is not None else parts_for(
        2.0 * T * B * G * ((2 if need_grad_x else 1) * I + H), threads)
    by_steps = parts > 1 and T >= parts and T * B >= MIN_ROWS_PER_GATE_COLUMN_TO_SPLIT_STEPS * G
    # [gw_ih | gb_ih | gw_hh] per gate row (gb_hh apart: GRU's n gate has a bias of each side); one per
    # part when the parts split the steps
    merged = np.empty((parts if by_steps else 1, G, I + 1 + H), dtype=x.dtype)
    gb_hh = np.empty((parts if by_steps else 1, G), dtype=x.dtype)

    if compiled is not None:
        _parts_on_openmp(compiled, d2, tail2, x, out, h0, w_ih, split, by_steps, parts, merged, gb_hh, grad_x)
    else:
        _parts_on_python_threads(d2, tail2, x, out, h0, w_ih, split, by_steps, parts, merged, gb_hh, grad_x)
    if by_steps:
        merged, gb_hh = merged.sum(axis=0), gb_hh.sum(axis=0)
    else:
        merged, gb_hh = merged[0], gb_hh[0]
    gw_ih, gb_ih, gw_hh = (np.ascontiguousarray(merged[:, :I]), merged[:, I].copy(),
                           np.ascontiguousarray(merged[:, I + 1:]))
    return (None if grad_x is None else grad_x.reshape(T, B, I)), (gw_ih, gw_hh, gb_ih, gb_hh)


def _parts_on_openmp(compiled, d2, tail2, x, out, h0, w_ih, split, by_steps, parts, merged, gb_hh, grad_x):
    """:func:`weight_and_input_gradients`' parts on the OpenMP threads: ``compiled`` is
    :mod:`._numba.gradients`, whose ``gradient_parts`` takes the blocks of each part as ``(start, stop)``
    rows (the same blocks as :func:`_parts_on_python_threads`)."""
    T, B, I = x.shape
    H, G = out.shape[2], d2.shape[1]
    x_rows, out_rows = _batch_first(x), _batch_first(out)  # no copies for the layers' views
    h0 = np.ascontiguousarray(h0)
    if by_steps:  # each part: its own steps, all gate rows
        steps, gate_rows = np.array(row_bounds(T, parts)), np.array([(0, split, split, G)] * parts)
        input_rows = steps * B
        shared_packed = np.empty((0, 1, 1, PANEL), dtype=x.dtype)  # each part packs its own steps'
    else:  # each part: all steps, its own gate rows and (step, row) pairs
        steps, gate_rows = np.array([(0, T)] * parts), np.array(gate_row_blocks(G, split, parts))
        input_rows = np.array(row_bounds(T * B, parts))
        shared_packed = compiled.empty_packed(T * B, I + 1 + H)
        compiled.pack_gradient_operands_in_parts(x_rows, out_rows, h0, shared_packed, parts)
    compiled.gradient_parts(d2, np.empty((0, 0), x.dtype) if tail2 is None else tail2, x_rows, out_rows, h0,
                            shared_packed, steps.astype(np.intp), gate_rows.astype(np.intp),
                            input_rows.astype(np.intp), split, merged, gb_hh, w_ih,
                            np.empty((0, I), x.dtype) if grad_x is None else grad_x)


def _parts_on_python_threads(d2, tail2, x, out, h0, w_ih, split, by_steps, parts, merged, gb_hh, grad_x):
    """:func:`weight_and_input_gradients`' parts on Python threads (:func:`run_parts`), the products on
    :func:`matmul` (the BLAS, or the Numba GEMM one product at a time)."""
    T, B, I = x.shape
    G = d2.shape[1]

    def gate_rows_product(out_merged, out_gb_hh, rows, ops, d_rows):
        """The weight and bias gradients of gate rows ``rows`` (a block of :func:`gate_row_blocks`) from the
        (step, row) pairs ``d_rows``, whose operands are ``ops``."""
        a, b, n0, n1 = rows
        if b > a:
            shared = slice(a, b)
            matmul(d2[d_rows, shared].T, ops, out=out_merged[shared])
            out_gb_hh[shared] = out_merged[shared, I]
        if n1 > n0:  # GRU's n gate: each side has its own gradient
            own, own_tail = slice(n0, n1), slice(n0 - split, n1 - split)
            recurrent = matmul(d2[d_rows, own].T, ops[:, I:])
            out_merged[own, I + 1:] = recurrent[:, 1:]
            out_gb_hh[own] = recurrent[:, 0]
            out_merged[own, :I + 1] = matmul(tail2[d_rows, own_tail].T, ops[:, :I + 1])

    def input_gradient(rows):
        matmul(d2[rows, :split], w_ih[:split], out=grad_x[rows])
        if tail2 is not None:
            grad_x[rows] += matmul(tail2[rows], w_ih[split:])

    if by_steps:
        step_bounds = row_bounds(T, parts)

        def part(k):  # one block of steps: all gate rows from its own operands
            first, stop = step_bounds[k]
            rows = slice(first * B, stop * B)
            gate_rows_product(merged[k], gb_hh[k], (0, split, split, G),
                              _gradient_operands(x, out, h0, slice(first, stop)), rows)
            if grad_x is not None:
                input_gradient(rows)
    else:
        operands = _gradient_operands(x, out, h0)
        gate_rows, pair_rows = gate_row_blocks(G, split, parts), row_bounds(T * B, parts)

        def part(k):  # one block of gate rows, and one of (step, row) pairs for the input gradient
            gate_rows_product(merged[0], gb_hh[0], gate_rows[k], operands, slice(None))
            if grad_x is not None:
                input_gradient(slice(*pair_rows[k]))

    run_parts(part, parts)


def projection_pays(w_ih, w_hh):
    """Whether the input projection is done before the time loop (:func:`projected_inputs`): for wide
    inputs and weights too large for a core's cache, where the gate rows (4H, 3H) fill whole panels (the
    time loop reads the projection as its gate rows, padding included)."""
    gate_rows, I = w_ih.shape
    return (I >= MIN_INPUT_TO_PROJECT and w_ih.nbytes + w_hh.nbytes >= MIN_WEIGHT_BYTES_TO_PROJECT
            and gate_rows % PANEL == 0)


def projected_inputs(x, w_ih, bias, threads=1):
    """``x_t W_ih^T + bias`` for every row and step, (B, T, N), from ``x`` (B, T, I) C-contiguous and
    ``w_ih`` (N, I): one GEMM, split over ``threads`` by rows (see :mod:`._split_gemm`)."""
    B, T, I = x.shape
    rows = x.reshape(B * T, I)
    projection = np.empty((B * T, w_ih.shape[0]), dtype=x.dtype)
    parts = parts_for(2.0 * projection.size * I, threads)
    bounds = row_bounds(B * T, parts)

    def part(k):
        first, stop = bounds[k]
        matmul(rows[first:stop], w_ih.T, out=projection[first:stop])
        projection[first:stop] += bias

    run_parts(part, parts)
    return projection.reshape(B, T, -1)


def weight_passes(rows):
    """Passes over the packed weights one step makes for ``rows`` rows: one per full tile, one per row left."""
    return rows // TILE_ROWS + rows % TILE_ROWS


def batch_split_pays(batch, steps, chunks, weight_bytes):
    """Whether running ``batch`` rows as ``chunks`` parallel chunks streams at least
    ``MIN_WEIGHT_BYTES_SAVED_TO_SPLIT_BATCH`` fewer weight bytes over ``steps`` steps than one chunk."""
    saved_passes = weight_passes(batch) - weight_passes(-(-batch // chunks))
    return steps * saved_passes * weight_bytes >= MIN_WEIGHT_BYTES_SAVED_TO_SPLIT_BATCH


class FusedKernels:
    """The contract's eight kernel functions over one backend's recurrences."""

    # Below this many hidden units a step is too little work to share between threads.
    COLUMN_SPLIT_MIN_HIDDEN = 64

    def __init__(self, *, lstm_forward, lstm_backward, gru_forward, gru_backward, rnn_forward, rnn_backward,
                 chunk_count, num_threads, one_thread=contextlib.nullcontext, column_forwards=None,
                 column_backwards=None, projects_inputs=False, gate_row_length=None, pack_block=None,
                 parallel_pack=None):
        self._lstm = (lstm_forward, lstm_backward)
        self._gru = (gru_forward, gru_backward)
        self._rnn = (rnn_forward, rnn_backward)
        self._chunk_count = chunk_count
        self._num_threads = num_threads
        # A context in which the backend's parallel loops run on the calling thread alone (the Numba
        # backend's start every thread otherwise; the Cython backend's start one per chunk).
        self._one_thread = one_thread
        # Optional {cell: forward kernel} that split each step's hidden units across threads, for
        # batches too small to give every thread rows of its own.
        self._column_forwards = column_forwards or {}
        self._column_backwards = column_backwards or {}  # likewise for backward loops (same arguments as
        # the batch kernel's, with W_hh as stored instead of packed)
        # Whether the batch forward kernels also take inputs projected beforehand (see projection_pays):
        # the LSTM's with W_hh alone packed, the GRU's with a packed W_ih of no rows
        self._projects_inputs = projects_inputs
        # Optional ``(length, itemsize) -> elements`` for the rows of the gate gradients that the batch
        # backward kernels read through their register tiles: a longer row where a row of ``length`` would
        # be a multiple of 4 KiB long (see _numba._copy.padded_row_length). None: rows as long as their values.
        self._gate_row_length = gate_row_length
        # Optional ``(block, packed, offset)`` packing loop for C-contiguous weight blocks (see pack_panels)
        self._pack_block = pack_block
        # Optional ``(first, second, packed, parts)`` packing of one or two blocks split over the backend's
        # threads (see pack_panels)
        self._parallel_pack = parallel_pack

    def _pack_panels(self, *blocks, threads=1):
        return pack_panels(*blocks, threads=threads, contiguous_packer=self._pack_block,
                           parallel_packer=self._parallel_pack)

    def _column_parts(self, cell, B, H, column_kernels=None):
        """Threads to split each step's hidden units over, or 0 to split the batch instead (or when
        ``column_kernels``, the forward ones by default, has no kernel for ``cell``)."""
        column_kernels = self._column_forwards if column_kernels is None else column_kernels
        if cell not in column_kernels or H % PANEL or H < self.COLUMN_SPLIT_MIN_HIDDEN:
            return 0
        threads = self._num_threads()
        return threads if 1 < threads and B < threads else 0

    def _gate_gradients(self, shape, lengths, dtype):
        """``(rows, view)``: the zero-filled gate gradients (T, B, G) for a batch backward kernel, as the
        array to hand it (rows padded where the backend asks, see ``gate_row_length``) and as a (T, B, G)
        view of its values, which reshapes to (T*B, G) without a copy."""
        T, B, G = shape
        length = G if self._gate_row_length is None else int(self._gate_row_length(G, np.dtype(dtype).itemsize))
        rows = _filled_by_loop((T, B, length), lengths, T, dtype)
        return rows, rows[:, :, :G]

    def _batch_chunks(self, B, T, weight_bytes):
        """``(chunks, context)`` for a batch kernel's call: the backend's chunk count, or one chunk, run
        in a one-thread context, where the split would not pay for waking a worker
        (:func:`batch_split_pays`; ``weight_bytes``: what one pass over the packed weights reads)."""
        chunks = self._chunk_count(B)
        if chunks > 1 and not batch_split_pays(B, T, chunks, weight_bytes):
            return 1, self._one_thread()
        return chunks, contextlib.nullcontext()

    # ---------------------------------------------------------------- LSTM
    def lstm_forward(self, x, lengths, weights, h0, c0, need_grad=True):
        w_ih, w_hh, b_ih, b_hh = weights
        T, B, _ = x.shape
        H = w_hh.shape[1]
        out = _filled_by_loop((B, T, H), lengths, T, x.dtype)  # batch-first, the layers' layout: no transposing copy
        h_n, c_n = np.empty_like(h0), np.empty_like(h0)
        gates = _saved((T, B, 4 * H), need_grad, x.dtype)
        tanh_c, c_states = _saved((T, B, H), need_grad, x.dtype), _saved((T, B, H), need_grad, x.dtype)
        h0, c0 = np.ascontiguousarray(h0), np.ascontiguousarray(c0)
        parts = self._column_parts("lstm", B, H)
        if parts:
            xh = _stacked_inputs(x, h0)
            c_n[:] = c0
            self._column_forwards["lstm"](xh, lengths, np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh),
                                          b_ih + b_hh, c_n, out, gates, tanh_c, c_states, need_grad, parts)
            h_n[:] = xh[T, :, x.shape[2]:]
        else:
            threads = self._num_threads()  # read before the context may set it to 1
            project = self._projects_inputs and projection_pays(w_ih, w_hh)
            chunks, threads_context = self._batch_chunks(B, T, w_hh.nbytes + (0 if project else w_ih.nbytes))
            with threads_context:
                if project:
                    x_in = projected_inputs(_batch_first(x), w_ih, b_ih + b_hh, threads)
                    packed = self._pack_panels(w_hh, threads=threads)
                else:
                    x_in, packed = _batch_first(x), self._pack_panels(w_ih, w_hh, threads=threads)
                self._lstm[0](x_in, lengths, packed, _padded(b_ih + b_hh), h0, c0, out, h_n, c_n, gates, tanh_c,
                              c_states, need_grad, chunks)
        cache = dict(x=x, lengths=lengths, h0=h0, c0=c0, out=out, gates=gates, tanh_c=tanh_c,
                     c_states=c_states) if need_grad else None
        return out.transpose(1, 0, 2), h_n, c_n, cache

    def lstm_backward(self, weights, cache, grad_out, grad_h_n, grad_c_n, need_grad_x=True):
        w_ih, w_hh = weights[:2]
        x, out, h0 = cache["x"], cache["out"], cache["h0"]
        dh, dc = _zeros_or_copy(grad_h_n, h0), _zeros_or_copy(grad_c_n, h0)
        grad_out = _batch_first(grad_out, x.dtype)
        saved = (cache["c0"], cache["gates"], cache["tanh_c"], cache["c_states"], dh, dc)
        threads = self._num_threads()
        parts = self._column_parts("lstm", x.shape[1], w_hh.shape[1], self._column_backwards)
        if parts:
            d_pre = _filled_by_loop(cache["gates"].shape, cache["lengths"], x.shape[0], x.dtype)
            self._column_backwards["lstm"](grad_out, cache["lengths"], np.ascontiguousarray(w_hh), *saved, d_pre,
                                           parts)
        else:
            d_pre_rows, d_pre = self._gate_gradients(cache["gates"].shape, cache["lengths"], x.dtype)
            chunks, threads_context = self._batch_chunks(x.shape[1], x.shape[0], w_hh.nbytes)
            with threads_context:
                self._lstm[1](grad_out, cache["lengths"], self._pack_panels(w_hh.T, threads=threads), *saved,
                              d_pre_rows, chunks)
        grad_x, grads = weight_and_input_gradients(x, out.transpose(1, 0, 2), h0, w_ih, d_pre, threads,
                                                   need_grad_x=need_grad_x)
        return grad_x, dh, dc, grads

    # ---------------------------------------------------------------- GRU
    def gru_forward(self, x, lengths, weights, h0, c0=None, need_grad=True):
        w_ih, w_hh, b_ih, b_hh = weights
        T, B, _ = x.shape
        H = w_hh.shape[1]
        out = _filled_by_loop((B, T, H), lengths, T, x.dtype)  # batch-first, the layers' layout: no transposing copy
        h_n = np.empty_like(h0)
        gates, hidden_n = _saved((T, B, 3 * H), need_grad, x.dtype), _saved((T, B, H), need_grad, x.dtype)
        h0 = np.ascontiguousarray(h0)
        parts = self._column_parts("gru", B, H)
        if parts:
            xh = _stacked_inputs(x, h0)
            self._column_forwards["gru"](xh, lengths, np.ascontiguousarray(w_ih), b_ih, np.ascontiguousarray(w_hh),
                                         b_hh, out, gates, hidden_n, need_grad, parts)
            h_n[:] = xh[T, :, x.shape[2]:]
        else:
            threads = self._num_threads()  # read before the context may set it to 1
            project = self._projects_inputs and projection_pays(w_ih, w_hh)
            chunks, threads_context = self._batch_chunks(B, T, w_hh.nbytes + (0 if project else w_ih.nbytes))
            with threads_context:
                if project:
                    x_in = projected_inputs(_batch_first(x), w_ih, b_ih, threads)
                    packed_ih = np.empty((-(-3 * H // PANEL), 0, PANEL), dtype=x.dtype)
                else:
                    x_in, packed_ih = _batch_first(x), self._pack_panels(w_ih, threads=threads)
                self._gru[0](x_in, lengths, packed_ih, _padded(b_ih), self._pack_panels(w_hh, threads=threads),
                             _padded(b_hh), h0, out, h_n, gates, hidden_n, need_grad, chunks)
        cache = dict(x=x, lengths=lengths, h0=h0, out=out, gates=gates, hidden_n=hidden_n) if need_grad else None
        return out.transpose(1, 0, 2), h_n, None, cache

    def gru_backward(self, weights, cache, grad_out, grad_h_n, grad_c_n=None, need_grad_x=True):
        w_ih, w_hh = weights[:2]
        x, out, h0 = cache["x"], cache["out"], cache["h0"]
        dh = _zeros_or_copy(grad_h_n, h0)
        d_from_h_rows, d_from_h = self._gate_gradients(cache["gates"].shape, cache["lengths"], x.dtype)
        dn_from_x = _filled_by_loop(cache["hidden_n"].shape, cache["lengths"], x.shape[0], x.dtype)
        threads = self._num_threads()
        chunks, threads_context = self._batch_chunks(x.shape[1], x.shape[0], w_hh.nbytes)
        with threads_context:
            self._gru[1](_batch_first(grad_out, x.dtype), cache["lengths"],
                         self._pack_panels(w_hh.T, threads=threads),
                         h0, out, cache["gates"], cache["hidden_n"], dh, dn_from_x, d_from_h_rows, chunks)
        grad_x, grads = weight_and_input_gradients(x, out.transpose(1, 0, 2), h0, w_ih, d_from_h,
                                                   threads, d_pre_x_tail=dn_from_x,
                                                   need_grad_x=need_grad_x)
        return grad_x, dh, None, grads

    # ---------------------------------------------------------------- vanilla RNN
    def _rnn_forward(self, x, lengths, weights, h0, relu, need_grad):
        w_ih, w_hh, b_ih, b_hh = weights
        T, B, _ = x.shape
        H = w_hh.shape[1]
        out = _filled_by_loop((B, T, H), lengths, T, x.dtype)  # batch-first, the layers' layout: no transposing copy
        h_n = np.empty_like(h0)
        h0 = np.ascontiguousarray(h0)
        parts = self._column_parts("rnn", B, H)
        if parts:
            xh = _stacked_inputs(x, h0)
            self._column_forwards["rnn"](xh, lengths, np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh),
                                         b_ih + b_hh, out, relu, parts)
            h_n[:] = xh[T, :, x.shape[2]:]
        else:
            packing_threads = self._num_threads()  # read before the context may set it to 1
            chunks, threads_context = self._batch_chunks(B, T, w_ih.nbytes + w_hh.nbytes)
            with threads_context:
                self._rnn[0](_batch_first(x), lengths, self._pack_panels(w_ih, w_hh, threads=packing_threads),
                             _padded(b_ih + b_hh), h0, out, h_n, relu, chunks)
        cache = dict(x=x, lengths=lengths, h0=h0, out=out, relu=relu) if need_grad else None
        return out.transpose(1, 0, 2), h_n, None, cache

    def rnn_tanh_forward(self, x, lengths, weights, h0, c0=None, need_grad=True):
        return self._rnn_forward(x, lengths, weights, h0, False, need_grad)

    def rnn_relu_forward(self, x, lengths, weights, h0, c0=None, need_grad=True):
        return self._rnn_forward(x, lengths, weights, h0, True, need_grad)

    def rnn_backward(self, weights, cache, grad_out, grad_h_n, grad_c_n=None, need_grad_x=True):
        w_ih, w_hh = weights[:2]
        x, out, h0 = cache["x"], cache["out"], cache["h0"]
        dh = _zeros_or_copy(grad_h_n, h0)
        d_pre = _filled_by_loop(x.shape[:2] + out.shape[2:], cache["lengths"], x.shape[0], x.dtype)
        threads = self._num_threads()
        chunks, threads_context = self._batch_chunks(x.shape[1], x.shape[0], w_hh.nbytes)
        with threads_context:
            self._rnn[1](_batch_first(grad_out, x.dtype), cache["lengths"],
                         self._pack_panels(w_hh.T, threads=threads), out, dh, d_pre, cache["relu"], chunks)
        grad_x, grads = weight_and_input_gradients(x, out.transpose(1, 0, 2), h0, w_ih, d_pre, threads,
                                                   need_grad_x=need_grad_x)
        return grad_x, dh, None, grads

    def export(self):
        """The contract's names, for a backend module's namespace."""
        return dict(lstm_forward=self.lstm_forward, lstm_backward=self.lstm_backward,
                    gru_forward=self.gru_forward, gru_backward=self.gru_backward,
                    rnn_tanh_forward=self.rnn_tanh_forward, rnn_tanh_backward=self.rnn_backward,
                    rnn_relu_forward=self.rnn_relu_forward, rnn_relu_backward=self.rnn_backward)
