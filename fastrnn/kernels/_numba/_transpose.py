"""A 16 x 16 block transpose in vector registers, and a 16-element row copy, for packing into panels.

Numba has no vector shuffles, and LLVM does not turn a scalar transpose loop into them: packing a
B=1 kernel's weights one element at a time ran at about 1.3 elements per cycle, 6.3 us per thread
for half of a H=128 GRU's weights on an AMD Zen 5, 8.5 us for an LSTM's, against 100 steps of
about 1 us each. This module writes the transpose as an LLVM intrinsic instead: 16 row loads,
four rounds of two-source shuffles, 16 row stores (1.8 and 2.4 us there, the same bytes).
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

BLOCK = 16


def _element_pointer(context, builder, array_type, array, row, column):
    return cgutils.get_item_pointer2(context, builder, data=array.data,
                                     shape=cgutils.unpack_tuple(builder, array.shape),
                                     strides=cgutils.unpack_tuple(builder, array.strides),
                                     layout=array_type.layout, inds=[row, column],
                                     wraparound=False, boundscheck=False)


def _operands_fit(dst, src):
    """The intrinsics' typing rule: 2-D arrays of one dtype, float32 or float64; ``dst`` C-contiguous,
    ``src`` C-contiguous or of the 'A' layout (whose rows the caller checks are contiguous)."""
    return (isinstance(dst, types.Array) and isinstance(src, types.Array) and dst.ndim == src.ndim == 2
            and dst.layout == "C" and src.layout in ("C", "A") and dst.dtype == src.dtype
            and dst.dtype in (types.float32, types.float64))


def _row_vectors(context, builder, signature, args):
    """For an intrinsic of arguments ``(dst, dst_row, src, src_row, src_col0)``: ``(load, store)``, where
    ``load(r)`` reads ``src[src_row + r, src_col0:src_col0 + 16]`` and ``store(r, values)`` writes
    ``dst[dst_row + r, :16]``, each as one vector."""
    dst_type, _, src_type, _, _ = signature.args
    dst_array = context.make_array(dst_type)(context, builder, args[0])
    src_array = context.make_array(src_type)(context, builder, args[2])
    dst_row, src_row, src_col0 = (context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 3, 4))
    intp = context.get_value_type(types.intp)
    vector_pointer = ir.VectorType(context.get_data_type(src_type.dtype), BLOCK).as_pointer()
    align = src_type.dtype.bitwidth // 8

    def load(r):
        pointer = _element_pointer(context, builder, src_type, src_array, builder.add(src_row, ir.Constant(intp, r)),
                                   src_col0)
        return builder.load(builder.bitcast(pointer, vector_pointer), align=align)

    def store(r, values):
        pointer = _element_pointer(context, builder, dst_type, dst_array, builder.add(dst_row, ir.Constant(intp, r)),
                                   ir.Constant(intp, 0))
        builder.store(values, builder.bitcast(pointer, vector_pointer), align=align)

    return load, store


def _swap_masks(distance):
    """Shuffle masks that swap bit ``distance`` of the row index with the same bit of the column index
    for a pair of rows ``(r, r + distance)``: ``(mask of the new row r, mask of the new row r + distance)``,
    lanes 0-15 taken from row r and 16-31 from row r + distance. All four bits swapped is a transpose."""
    low = [c if not c & distance else BLOCK + c - distance for c in range(BLOCK)]
    high = [c + distance if not c & distance else BLOCK + c for c in range(BLOCK)]
    return low, high


@intrinsic
def transpose_block(typingctx, dst, dst_row0, src, src_row0, src_col0):
    """``dst[dst_row0 + k, c] = src[src_row0 + c, src_col0 + k]`` for ``k, c < 16``.

    dst: 2-D C-contiguous; src: 2-D, C-contiguous or of any layout whose rows are contiguous
    (``src.strides[1] == src.itemsize``, which the caller checks: each row's 16 values are read as one
    vector); one dtype, float32 or float64. The 16 x 16 block must lie inside both (not checked: the
    caller's loop bounds guarantee it).
    """
    if not _operands_fit(dst, src):
        return None
    sig = types.void(dst, dst_row0, src, src_row0, src_col0)

    def codegen(context, builder, signature, args):
        load, store = _row_vectors(context, builder, signature, args)
        rows = [load(r) for r in range(BLOCK)]
        mask_type = ir.VectorType(ir.IntType(32), BLOCK)
        for distance in (1, 2, 4, 8):
            low, high = (ir.Constant(mask_type, mask) for mask in _swap_masks(distance))
            for r in range(BLOCK):
                if not r & distance:
                    first, second = rows[r], rows[r + distance]
                    rows[r] = builder.shuffle_vector(first, second, low)
                    rows[r + distance] = builder.shuffle_vector(first, second, high)
        for k in range(BLOCK):
            store(k, rows[k])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def copy_row_block(typingctx, dst, dst_row, src, src_row, src_col0):
    """``dst[dst_row, c] = src[src_row, src_col0 + c]`` for ``c < 16``, as one vector load and store.

    For ``src`` of the 'A' layout whose rows are contiguous (the caller checks ``src.strides[1] ==
    src.itemsize``): Numba cannot know the stride is 1, so its element loop stays scalar. dst: 2-D
    C-contiguous, rows of 16; one dtype, float32 or float64; the 16 values must lie inside ``src``.
    """
    if not _operands_fit(dst, src):
        return None
    sig = types.void(dst, dst_row, src, src_row, src_col0)

    def codegen(context, builder, signature, args):
        load, store = _row_vectors(context, builder, signature, args)
        store(0, load(0))
        return context.get_dummy_value()

    return sig, codegen
