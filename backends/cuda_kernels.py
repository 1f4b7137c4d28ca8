"""The CUDA C sources of the CuPy backend's kernels, all in this one module.

Each entry of :data:`SOURCES` is a complete CUDA C++ translation unit (the shared
:data:`PRELUDE` plus its kernels) that :class:`~xpnn.backends.cupy.CupyBackend` compiles with
``cupy.RawModule(code=..., options=NVRTC_OPTIONS)`` on first use, and that
``tests/test_cuda_sources.py`` compiles with NVRTC for sm_80 and sm_90 on machines without a
GPU (``pytest -m nvrtc``). Every kernel is a template instantiated for float and double
through ``extern "C"`` wrappers, whose names :func:`kernel_name` builds and :data:`KERNELS`
lists per source; this module imports nothing from CuPy.

Numerics. The kernels perform the operations of the generic Array API versions in
:class:`~xpnn.backends.base.Backend` in the same order and in the array's dtype; the host
computes the same scalar coefficients in Python floats (double) and casts them to the dtype,
as NumPy and CuPy do for a Python float operand. :data:`NVRTC_OPTIONS` turns off the
contraction of a multiplication and an addition into one fused multiply-add (which rounds
once instead of twice), and NVRTC's defaults keep division and square root correctly
rounded and subnormals intact, so the element-wise kernels (optimizer steps, ReLU mask) and
max pooling (comparisons and sums in tap order) give the same bits as the generic versions
run by CuPy. ``exp`` is CUDA's (``expf`` for float: at most 2 units in the last place from
the exact value, where NumPy's is correctly rounded or nearly so), so the softmax
cross-entropy gradient may differ from the NumPy backend's in the last bits.

Threads: a one-dimensional grid of :data:`THREADS_PER_BLOCK`-thread blocks, at most
:data:`MAX_BLOCKS` of them, each thread walking the entries with a grid-sized stride; every
index is 64-bit (``index_t``).
"""

from __future__ import annotations

#: NVRTC options of every source: C++17 (CuPy's default, stated so the compile check uses
#: the same) and no fused multiply-add contraction (see the module docstring).
NVRTC_OPTIONS: tuple[str, ...] = ("-std=c++17", "--fmad=false")

#: Threads per block of every launch.
THREADS_PER_BLOCK = 256
#: The most blocks of one launch (the threads then loop with a grid-sized stride): 8,192
#: blocks of 256 threads fill even the largest GPUs several times over.
MAX_BLOCKS = 8192

#: Kernel name suffix per floating dtype name.
FLOAT_SUFFIX = {"float32": "f32", "float64": "f64"}
#: Kernel name suffix per max-pooling winner dtype name.
INDEX_SUFFIX = {"int8": "i8", "int32": "i32"}


def kernel_name(base: str, dtype: str, index_dtype: str | None = None) -> str:
    """The ``extern "C"`` name of kernel ``base`` for the floating dtype name ``dtype``
    (and, for max pooling, the winner dtype name ``index_dtype``): ``adam_step_f32``,
    ``max_pool_f64_i8``."""
    name = f"{base}_{FLOAT_SUFFIX[dtype]}"
    return name if index_dtype is None else f"{name}_{INDEX_SUFFIX[index_dtype]}"


def blocks_for(count: int) -> int:
    """Blocks of a launch over ``count`` entries (at least 1, at most ``MAX_BLOCKS``)."""
    return max(1, min(MAX_BLOCKS, -(-count // THREADS_PER_BLOCK)))


#: Definitions shared by every source: the index type, the grid-stride loop, −∞.
PRELUDE = r"""
typedef long long index_t;

// Every entry 0 <= i < count, each thread taking every (threads in the grid)-th one.
#define XPNN_FOR_EACH(i, count)                                                          \
    for (index_t i = (index_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);       \
         i += (index_t)blockDim.x * gridDim.x)

template <typename T> __device__ T negative_infinity();
template <> __device__ float negative_infinity<float>() {
    return __int_as_float((int)0xff800000u);
}
template <> __device__ double negative_infinity<double>() {
    return __longlong_as_double((long long)0xfff0000000000000ull);
}
"""

#: The optimizers' in-place updates (``Backend.momentum_step``, ``adam_step``,
#: ``rmsprop_step``, ``adagrad_step``), one thread per entry of flat arrays of ``count``
#: entries. Scalars arrive in the arrays' dtype, coefficients such as 1 − β precomputed.
OPTIMIZERS = r"""
// v <- mu v - eta g;  w <- w + v  (or, Nesterov: w <- w - eta g + mu v)
template <typename T>
__device__ void momentum_step(T* value, T* velocity, const T* grad, T learning_rate,
                              T momentum, int nesterov, index_t count) {
    XPNN_FOR_EACH(i, count) {
        T scaled = learning_rate * grad[i];
        T v = velocity[i] * momentum;
        v = v - scaled;
        velocity[i] = v;
        if (nesterov) {
            T w = value[i] - scaled;
            value[i] = w + momentum * v;
        } else {
            value[i] = value[i] + v;
        }
    }
}

// w <- w keep (keep = 1 - eta lambda, AdamW; exactly 1 otherwise);
// m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  w <- w - eta_t m / (sqrt(v) + eps)
template <typename T>
__device__ void adam_step(T* value, T* m, T* v, const T* grad, T beta_1, T one_minus_beta_1,
                          T beta_2, T one_minus_beta_2, T step_size, T epsilon, T keep,
                          index_t count) {
    XPNN_FOR_EACH(i, count) {
        T g = grad[i];
        T w = value[i] * keep;
        T m_i = m[i] * beta_1;
        m_i = m_i + one_minus_beta_1 * g;
        T v_i = v[i] * beta_2;
        v_i = v_i + (g * g) * one_minus_beta_2;
        m[i] = m_i;
        v[i] = v_i;
        value[i] = w - (m_i / (sqrt(v_i) + epsilon)) * step_size;
    }
}

// h <- rho h + (1 - rho) g^2;  w <- w - eta g / (sqrt(h) + eps)
template <typename T>
__device__ void rmsprop_step(T* value, T* mean_square, const T* grad, T learning_rate,
                             T rho, T one_minus_rho, T epsilon, index_t count) {
    XPNN_FOR_EACH(i, count) {
        T g = grad[i];
        T h = mean_square[i] * rho;
        h = h + one_minus_rho * (g * g);
        mean_square[i] = h;
        value[i] = value[i] - (learning_rate * g) / (sqrt(h) + epsilon);
    }
}

// h <- h + g^2;  w <- w - eta g / (sqrt(h) + eps)
template <typename T>
__device__ void adagrad_step(T* value, T* sum_squares, const T* grad, T learning_rate,
                             T epsilon, index_t count) {
    XPNN_FOR_EACH(i, count) {
        T g = grad[i];
        T h = sum_squares[i] + g * g;
        sum_squares[i] = h;
        value[i] = value[i] - (learning_rate * g) / (sqrt(h) + epsilon);
    }
}

#define XPNN_OPTIMIZERS(T, S)                                                            \
extern "C" __global__ void momentum_step_##S(T* value, T* velocity, const T* grad,      \
        T learning_rate, T momentum, int nesterov, index_t count) {                      \
    momentum_step<T>(value, velocity, grad, learning_rate, momentum, nesterov, count);   \
}                                                                                        \
extern "C" __global__ void adam_step_##S(T* value, T* m, T* v, const T* grad, T beta_1, \
        T one_minus_beta_1, T beta_2, T one_minus_beta_2, T step_size, T epsilon,        \
        T keep, index_t count) {                                                         \
    adam_step<T>(value, m, v, grad, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2,  \
                 step_size, epsilon, keep, count);                                       \
}                                                                                        \
extern "C" __global__ void rmsprop_step_##S(T* value, T* mean_square, const T* grad,    \
        T learning_rate, T rho, T one_minus_rho, T epsilon, index_t count) {             \
    rmsprop_step<T>(value, mean_square, grad, learning_rate, rho, one_minus_rho, epsilon, \
                    count);                                                              \
}                                                                                        \
extern "C" __global__ void adagrad_step_##S(T* value, T* sum_squares, const T* grad,    \
        T learning_rate, T epsilon, index_t count) {                                     \
    adagrad_step<T>(value, sum_squares, grad, learning_rate, epsilon, count);            \
}

XPNN_OPTIMIZERS(float, f32)
XPNN_OPTIMIZERS(double, f64)
"""

#: ReLU's backward (``Backend.apply_mask``): out = values where mask, else 0, over flat
#: arrays of ``count`` entries laid out alike.
APPLY_MASK = r"""
template <typename T>
__device__ void apply_mask(const T* values, const bool* mask, T* out, index_t count) {
    XPNN_FOR_EACH(i, count) {
        out[i] = mask[i] ? values[i] : (T)0;
    }
}

extern "C" __global__ void apply_mask_f32(const float* values, const bool* mask, float* out,
                                          index_t count) {
    apply_mask<float>(values, mask, out, count);
}
extern "C" __global__ void apply_mask_f64(const double* values, const bool* mask,
                                          double* out, index_t count) {
    apply_mask<double>(values, mask, out, count);
}
"""

#: The softmax cross-entropy gradient (``Backend.softmax_cross_entropy_grad``) from the
#: log-probabilities, C-contiguous (rows, classes). The divisor M is ``*count_pointer``
#: when that pointer is not null (a device scalar: no copy to the host), else ``count``.
SOFTMAX_CROSS_ENTROPY = r"""
// integer labels: out[r, k] = (exp(log_probs[r, k]) - [labels[r] == k]) / M,
// and 0 on the rows whose label is ignore_index (when has_ignore)
template <typename T>
__device__ void softmax_cross_entropy_grad_labels(
        const T* log_probs, const long long* labels, T count, const T* count_pointer,
        long long ignore_index, int has_ignore, T* out, index_t rows, index_t classes) {
    T divisor = count_pointer ? *count_pointer : count;
    XPNN_FOR_EACH(i, rows * classes) {
        long long label = labels[i / classes];
        if (has_ignore && label == ignore_index) {
            out[i] = (T)0;
        } else {
            T target = (label == i % classes) ? (T)1 : (T)0;
            out[i] = (exp(log_probs[i]) - target) / divisor;
        }
    }
}

// one-hot or probability rows: out = (exp(log_probs) - target) / M
template <typename T>
__device__ void softmax_cross_entropy_grad_rows(
        const T* log_probs, const T* target, T count, const T* count_pointer, T* out,
        index_t size) {
    T divisor = count_pointer ? *count_pointer : count;
    XPNN_FOR_EACH(i, size) {
        out[i] = (exp(log_probs[i]) - target[i]) / divisor;
    }
}

#define XPNN_SOFTMAX_CROSS_ENTROPY(T, S)                                                 \
extern "C" __global__ void softmax_cross_entropy_grad_labels_##S(                        \
        const T* log_probs, const long long* labels, T count, const T* count_pointer,    \
        long long ignore_index, int has_ignore, T* out, index_t rows, index_t classes) {  \
    softmax_cross_entropy_grad_labels<T>(log_probs, labels, count, count_pointer,        \
                                         ignore_index, has_ignore, out, rows, classes);  \
}                                                                                        \
extern "C" __global__ void softmax_cross_entropy_grad_rows_##S(                          \
        const T* log_probs, const T* target, T count, const T* count_pointer, T* out,    \
        index_t size) {                                                                  \
    softmax_cross_entropy_grad_rows<T>(log_probs, target, count, count_pointer, out,     \
                                       size);                                            \
}

XPNN_SOFTMAX_CROSS_ENTROPY(float, f32)
XPNN_SOFTMAX_CROSS_ENTROPY(double, f64)
"""

#: Max pooling forward and backward (``Backend.max_pool``, ``max_pool_backward``) on
#: (N, C, H, W) arrays of any strides, given in elements (N, C, H, W order) after the
#: geometry: sizes n, c, height, width, out_h, out_w, then k_h, k_w, s_h, s_w, d_h, d_w and
#: the top and left padding.
#: A thread per output entry (forward) or per input entry (backward), numbered channels
#: fastest when ``channels_last`` (coalesced on channels-last storage), else width fastest.
MAX_POOL = r"""
struct Geometry {
    index_t n, c, height, width, out_h, out_w;
    int k_h, k_w, s_h, s_w, d_h, d_w, top, left;
};

struct Strides {
    index_t n, c, h, w;
    __device__ index_t at(index_t b, index_t ch, index_t y, index_t x) const {
        return b * n + ch * c + y * h + x * w;
    }
};

// Thread number i as (b, ch, y, x) over an (n, c, rows, cols) grid.
__device__ void position(index_t i, index_t c, index_t rows, index_t cols, int channels_last,
                         index_t* b, index_t* ch, index_t* y, index_t* x) {
    if (channels_last) {
        *ch = i % c; i /= c;
        *x = i % cols; i /= cols;
        *y = i % rows; *b = i / rows;
    } else {
        *x = i % cols; i /= cols;
        *y = i % rows; i /= rows;
        *ch = i % c; *b = i / c;
    }
}

// y[b, ch, i, j] = max over taps t = p k_w + q of x_pad[b, ch, i s_h + p d_h, j s_w + q d_w]
// (padding -inf); winner = the first t holding it. Running maximum in tap order, as
// backends/strided.py: t wins if strictly greater; a NaN tap makes the maximum NaN.
template <typename T, typename I>
__device__ void max_pool(const T* x, T* y, I* winner, Geometry g, Strides xs, Strides ys,
                         int channels_last) {
    XPNN_FOR_EACH(index, g.n * g.c * g.out_h * g.out_w) {
        index_t b, ch, i, j;
        position(index, g.c, g.out_h, g.out_w, channels_last, &b, &ch, &i, &j);
        T best = negative_infinity<T>();
        I win = 0;
        for (int p = 0; p < g.k_h; ++p) {
            index_t row = i * g.s_h + (index_t)p * g.d_h - g.top;
            for (int q = 0; q < g.k_w; ++q) {
                index_t col = j * g.s_w + (index_t)q * g.d_w - g.left;
                T value = (row >= 0 && row < g.height && col >= 0 && col < g.width)
                              ? x[xs.at(b, ch, row, col)] : negative_infinity<T>();
                int tap = p * g.k_w + q;
                if (tap == 0) {
                    best = value;
                } else {
                    if (value > best) win = (I)tap;
                    if (value > best || isnan(value)) best = value;
                }
            }
        }
        y[ys.at(b, ch, i, j)] = best;
        winner[ys.at(b, ch, i, j)] = win;
    }
}

// out[b, ch, r, c] = sum, in tap order, of grad[b, ch, i, j] over the windows (i, j) whose
// winning tap t = p k_w + q reads input (r, c): i s_h + p d_h = r + top,
// j s_w + q d_w = c + left. A gather: no atomics, the same sum order as the generic fold.
template <typename T, typename I>
__device__ void max_pool_backward(const T* grad, const I* winner, T* out, Geometry g,
                                  Strides gs, Strides ws, Strides os, int channels_last) {
    XPNN_FOR_EACH(index, g.n * g.c * g.height * g.width) {
        index_t b, ch, r, c;
        position(index, g.c, g.height, g.width, channels_last, &b, &ch, &r, &c);
        T total = (T)0;
        for (int p = 0; p < g.k_h; ++p) {
            index_t row = r + g.top - (index_t)p * g.d_h;
            if (row < 0 || row % g.s_h != 0 || row / g.s_h >= g.out_h) continue;
            index_t i = row / g.s_h;
            for (int q = 0; q < g.k_w; ++q) {
                index_t col = c + g.left - (index_t)q * g.d_w;
                if (col < 0 || col % g.s_w != 0 || col / g.s_w >= g.out_w) continue;
                index_t j = col / g.s_w;
                if (winner[ws.at(b, ch, i, j)] == (I)(p * g.k_w + q)) {
                    total = total + grad[gs.at(b, ch, i, j)];
                }
            }
        }
        out[os.at(b, ch, r, c)] = total;
    }
}

// The wrappers take plain scalars (no struct arguments) and pack them.
#define XPNN_GEOMETRY_PARAMS                                                             \
    index_t n, index_t c, index_t height, index_t width, index_t out_h, index_t out_w,   \
    int k_h, int k_w, int s_h, int s_w, int d_h, int d_w, int top, int left
#define XPNN_GEOMETRY                                                                    \
    Geometry{n, c, height, width, out_h, out_w, k_h, k_w, s_h, s_w, d_h, d_w, top, left}
#define XPNN_STRIDES_PARAMS(A)                                                           \
    index_t A##_n, index_t A##_c, index_t A##_h, index_t A##_w
#define XPNN_STRIDES(A) Strides{A##_n, A##_c, A##_h, A##_w}

#define XPNN_MAX_POOL(T, S, I, SI)                                                       \
extern "C" __global__ void max_pool_##S##_##SI(const T* x, T* y, I* winner,             \
        XPNN_GEOMETRY_PARAMS, XPNN_STRIDES_PARAMS(xs), XPNN_STRIDES_PARAMS(ys),          \
        int channels_last) {                                                             \
    max_pool<T, I>(x, y, winner, XPNN_GEOMETRY, XPNN_STRIDES(xs), XPNN_STRIDES(ys),      \
                   channels_last);                                                       \
}                                                                                        \
extern "C" __global__ void max_pool_backward_##S##_##SI(const T* grad, const I* winner,  \
        T* out, XPNN_GEOMETRY_PARAMS, XPNN_STRIDES_PARAMS(gs), XPNN_STRIDES_PARAMS(ws),  \
        XPNN_STRIDES_PARAMS(os), int channels_last) {                                    \
    max_pool_backward<T, I>(grad, winner, out, XPNN_GEOMETRY, XPNN_STRIDES(gs),          \
                            XPNN_STRIDES(ws), XPNN_STRIDES(os), channels_last);          \
}

XPNN_MAX_POOL(float, f32, signed char, i8)
XPNN_MAX_POOL(float, f32, int, i32)
XPNN_MAX_POOL(double, f64, signed char, i8)
XPNN_MAX_POOL(double, f64, int, i32)
"""

#: Every source by name, each a complete translation unit.
SOURCES: dict[str, str] = {
    "optimizers": PRELUDE + OPTIMIZERS,
    "apply_mask": PRELUDE + APPLY_MASK,
    "softmax_cross_entropy": PRELUDE + SOFTMAX_CROSS_ENTROPY,
    "max_pool": PRELUDE + MAX_POOL,
}

#: The ``extern "C"`` kernels each source defines.
KERNELS: dict[str, tuple[str, ...]] = {
    "optimizers": tuple(kernel_name(base, dtype) for base in
                        ("momentum_step", "adam_step", "rmsprop_step", "adagrad_step")
                        for dtype in FLOAT_SUFFIX),
    "apply_mask": tuple(kernel_name("apply_mask", dtype) for dtype in FLOAT_SUFFIX),
    "softmax_cross_entropy": tuple(
        kernel_name(base, dtype) for base in
        ("softmax_cross_entropy_grad_labels", "softmax_cross_entropy_grad_rows")
        for dtype in FLOAT_SUFFIX),
    "max_pool": tuple(kernel_name(base, dtype, index) for base in
                      ("max_pool", "max_pool_backward")
                      for dtype in FLOAT_SUFFIX for index in INDEX_SUFFIX),
}
