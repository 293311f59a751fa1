// Fused CPU training kernels for rnnpipe's LSTM and GRU layers (models/recurrent.py, models/fused.py).
//
// Why: on a CPU the step loop of a TensorFlow LSTM is bound by ~40 small ops per step (forward and
// backward), each dispatched by the executor, and by a [batch, units] x [units, 4 units] matmul that the
// intra-op pool splits poorly. Rows of a batch never interact, so here the batch is cut into one block
// of rows per worker thread and each thread runs the whole sequence for its rows: no per-step
// synchronisation, every step one small matmul against pre-packed weights plus one fused pass over the gates.
//
// The input projection (x W + b) and the recurrent weight gradient (dU = H^T dZ) stay outside, as
// single large TensorFlow matmuls. Masking follows keras.layers.RNN: at a masked step the states keep
// their value and the output repeats the previous output (zeros when zero_output_for_mask).
#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include "Eigen/Core"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace rnnpipe {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

using Matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;

REGISTER_OP("RnnpipeLstmForward")
    .Input("projected: float")       // [T, B, 4U]: x W + b, gates ordered i, f, g, o
    .Input("h0: float")              // [B, U]
    .Input("c0: float")              // [B, U]
    .Input("recurrent_kernel: float")  // [U, 4U]
    .Input("mask: float")            // [T, B]: 1 keeps a step, 0 skips it
    .Input("recurrent_mask: float")  // [B, U]: multiplies h before the recurrent matmul
    .Attr("zero_output_for_mask: bool")
    .Output("outputs: float")        // [T, B, U]
    .Output("h_states: float")       // [T, B, U]: h after each step
    .Output("c_states: float")       // [T, B, U]: c after each step
    .Output("gates: float")          // [T, B, 4U]: activated i, f, g, o
    .Output("last_output: float")    // [B, U]
    .Output("last_h: float")         // [B, U]
    .Output("last_c: float")         // [B, U]
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle projected, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &projected));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h0));
      ShapeHandle sequence = c->MakeShape({c->Dim(projected, 0), c->Dim(projected, 1), c->Dim(h0, 1)});
      for (int i = 0; i < 3; ++i) c->set_output(i, sequence);
      c->set_output(3, projected);
      for (int i = 4; i < 7; ++i) c->set_output(i, c->MakeShape({c->Dim(projected, 1), c->Dim(h0, 1)}));
      return absl::OkStatus();
    });

REGISTER_OP("RnnpipeLstmBackward")
    .Input("recurrent_kernel: float")  // [U, 4U]
    .Input("c0: float")              // [B, U]
    .Input("mask: float")            // [T, B]
    .Input("recurrent_mask: float")  // [B, U]
    .Input("c_states: float")        // [T, B, U]
    .Input("gates: float")           // [T, B, 4U]
    .Input("d_outputs: float")       // [T, B, U]
    .Input("d_last_output: float")   // [B, U]
    .Input("d_last_h: float")        // [B, U]
    .Input("d_last_c: float")        // [B, U]
    .Attr("zero_output_for_mask: bool")
    .Output("d_projected: float")    // [T, B, 4U]: also dL/dz, the pre-activation gradient
    .Output("d_h0: float")           // [B, U]
    .Output("d_c0: float")           // [B, U]
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(5));
      c->set_output(1, c->input(1));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

namespace {

// Runs `work(first_row, end_row)` over the batch in as many blocks as there are worker threads.
template <typename Work>
void ForEachRowBlock(OpKernelContext* context, int64_t batch, int64_t cost_per_row, Work work) {
  const auto& workers = *context->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers.num_threads, workers.workers, batch, cost_per_row, work);
}

// Row block [first, first + rows) of step t of a time-major [T, batch, width] tensor.
ConstMatrixMap StepRows(const float* base, int64_t t, int64_t batch, int64_t first, int64_t rows, int64_t width) {
  return ConstMatrixMap(base + (t * batch + first) * width, rows, width);
}
MatrixMap StepRows(float* base, int64_t t, int64_t batch, int64_t first, int64_t rows, int64_t width) {
  return MatrixMap(base + (t * batch + first) * width, rows, width);
}

// Row block [first, first + rows) of a [batch, units] state tensor.
ConstMatrixMap StateRows(const Tensor& state, int64_t first, int64_t rows) {
  const int64_t units = state.dim_size(1);
  return ConstMatrixMap(state.flat<float>().data() + first * units, rows, units);
}
void StoreStateRows(const Matrix& rows, int64_t first, Tensor* state) {
  std::memcpy(state->flat<float>().data() + first * rows.cols(), rows.data(), rows.size() * sizeof(float));
}

// keras.layers.RNN's masking after a forward step: a kept row takes the new state(s) and outputs the new h;
// a skipped row keeps its state(s) and repeats its previous output, or outputs zeros (zero_output_for_mask).
void MaskForwardStep(const float* keep, bool zero_output, const Matrix& h_new, const Matrix* c_new, Matrix& h,
                     Matrix* c, Matrix& output) {
  for (int64_t r = 0; r < h.rows(); ++r) {
    if (keep[r] > 0.5f) {
      h.row(r) = h_new.row(r);
      if (c != nullptr) c->row(r) = c_new->row(r);
      output.row(r) = h_new.row(r);
    } else if (zero_output) {
      output.row(r).setZero();
    }
  }
}

// The backward of a skipped row: its state gradients pass through unchanged (the caller leaves them), it
// has no gate gradient, and its output gradient goes to the previous output unless that output was zeros.
void SkipRowBackward(int64_t r, bool zero_output, const Matrix& d_output, Matrix& carry, MatrixMap& d_gates) {
  d_gates.row(r).setZero();
  if (zero_output) {
    carry.row(r).setZero();
  } else {
    carry.row(r) = d_output.row(r);
  }
}

// The recurrent weight matrix B [depth, columns], packed once per op call into panels of kPanel columns
// (depth x kPanel floats each, zero-padded). Every step then multiplies the thread's rows by it with a
// register-blocked FMA kernel, without the per-call repacking of a general GEMM. A panel is the outer loop:
// it stays in L1 while every block of rows goes through it, so B streams from L3 once per step rather than
// once per block. With AVX-512, 8 x 32 blocks (16 zmm accumulators); with AVX2, 6 x 16. Each output sums over
// k in the same order either way, so the results are the same to the bit. One thread, [32, 512] x
// [512, 1536]: 267 GFLOP/s against 117 for the AVX2 kernel with rows outer (AMD EPYC, Zen 5).
#if defined(__AVX512F__)
#define RNNPIPE_VECTORS 1
struct Lanes {
  using Vector = __m512;
  static constexpr int kWidth = 16;
  static constexpr int kBlockRows = 8;  // 16 accumulators of the 32 registers
  static Vector Load(const float* p) { return _mm512_loadu_ps(p); }
  static Vector Broadcast(float x) { return _mm512_set1_ps(x); }
  static Vector MultiplyAdd(Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); }
  static void Store(float* p, Vector v) { _mm512_storeu_ps(p, v); }
};
#elif defined(__AVX2__) && defined(__FMA__)
#define RNNPIPE_VECTORS 1
struct Lanes {
  using Vector = __m256;
  static constexpr int kWidth = 8;
  static constexpr int kBlockRows = 6;  // 12 accumulators of the 16 registers
  static Vector Load(const float* p) { return _mm256_loadu_ps(p); }
  static Vector Broadcast(float x) { return _mm256_set1_ps(x); }
  static Vector MultiplyAdd(Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); }
  static void Store(float* p, Vector v) { _mm256_storeu_ps(p, v); }
};
#else
struct Lanes {  // no vectors: the scalar loop below, in panels as wide as AVX2's
  static constexpr int kWidth = 8;
  static constexpr int kBlockRows = 6;
};
#endif

class PackedWeights {
 public:
  static constexpr int64_t kPanel = 2 * Lanes::kWidth;
  static constexpr int kBlockRows = Lanes::kBlockRows;

  // `transpose`: `source` holds B^T, i.e. it is [columns, depth] row-major.
  PackedWeights(const float* source, int64_t depth, int64_t columns, bool transpose)
      : depth_(depth), columns_(columns), panels_((columns + kPanel - 1) / kPanel),
        data_(panels_ * depth * kPanel, 0.0f) {
    for (int64_t k = 0; k < depth; ++k) {
      for (int64_t n = 0; n < columns; ++n) {
        data_[(n / kPanel) * depth * kPanel + k * kPanel + n % kPanel] =
            transpose ? source[n * depth + k] : source[k * columns + n];
      }
    }
  }

  // out[rows, columns] += a[rows, depth] * B; row-major with leading dimensions lda and ldo.
  void MultiplyAdd(const float* a, int64_t lda, int64_t rows, float* out, int64_t ldo) const {
    for (int64_t panel = 0; panel < panels_; ++panel) {
      const int64_t first = panel * kPanel, count = std::min<int64_t>(kPanel, columns_ - first);
      const float* b = data_.data() + panel * depth_ * kPanel;
      int64_t row = 0;
      for (; row + kBlockRows <= rows; row += kBlockRows) {
        Block<kBlockRows>(a + row * lda, lda, b, out + row * ldo + first, ldo, count);
      }
      Remainder<kBlockRows - 1>(rows - row, a + row * lda, lda, b, out + row * ldo + first, ldo, count);
    }
  }

 private:
  // The last rows of a panel, fewer than a block: the kernel for exactly that many.
  template <int kRows>
  void Remainder(int64_t rows, const float* a, int64_t lda, const float* b, float* out, int64_t ldo,
                 int64_t count) const {
    if constexpr (kRows > 0) {
      if (rows == kRows) {
        Block<kRows>(a, lda, b, out, ldo, count);
      } else {
        Remainder<kRows - 1>(rows, a, lda, b, out, ldo, count);
      }
    }
  }

  // One block of rows by one panel; a last, partial panel (count < kPanel) goes through a buffer.
  template <int kRows>
  void Block(const float* a, int64_t lda, const float* b, float* out, int64_t ldo, int64_t count) const {
    if (count == kPanel) {
      Panel<kRows>(a, lda, b, out, ldo);
      return;
    }
    float edge[kRows * kPanel];
    for (int r = 0; r < kRows; ++r) {
      std::fill(edge + r * kPanel, edge + (r + 1) * kPanel, 0.0f);
      std::copy(out + r * ldo, out + r * ldo + count, edge + r * kPanel);
    }
    Panel<kRows>(a, lda, b, edge, kPanel);
    for (int r = 0; r < kRows; ++r) std::copy(edge + r * kPanel, edge + r * kPanel + count, out + r * ldo);
  }

  template <int kRows>
  void Panel(const float* a, int64_t lda, const float* b, float* out, int64_t ldo) const {
#if defined(RNNPIPE_VECTORS)
    Lanes::Vector low[kRows], high[kRows];
    for (int r = 0; r < kRows; ++r) {
      low[r] = Lanes::Load(out + r * ldo);
      high[r] = Lanes::Load(out + r * ldo + Lanes::kWidth);
    }
    for (int64_t k = 0; k < depth_; ++k) {
      const Lanes::Vector b_low = Lanes::Load(b + k * kPanel), b_high = Lanes::Load(b + k * kPanel + Lanes::kWidth);
      for (int r = 0; r < kRows; ++r) {
        const Lanes::Vector x = Lanes::Broadcast(a[r * lda + k]);
        low[r] = Lanes::MultiplyAdd(x, b_low, low[r]);
        high[r] = Lanes::MultiplyAdd(x, b_high, high[r]);
      }
    }
    for (int r = 0; r < kRows; ++r) {
      Lanes::Store(out + r * ldo, low[r]);
      Lanes::Store(out + r * ldo + Lanes::kWidth, high[r]);
    }
#else
    for (int r = 0; r < kRows; ++r) {
      for (int64_t k = 0; k < depth_; ++k) {
        for (int n = 0; n < kPanel; ++n) out[r * ldo + n] += a[r * lda + k] * b[k * kPanel + n];
      }
    }
#endif
  }

  int64_t depth_, columns_, panels_;
  std::vector<float> data_;
};

}  // namespace

class LstmForwardOp : public OpKernel {
 public:
  explicit LstmForwardOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& h0 = context->input(1);
    const Tensor& c0 = context->input(2);
    const Tensor& kernel = context->input(3);
    const Tensor& mask = context->input(4);
    const Tensor& recurrent_mask = context->input(5);
    OP_REQUIRES(context, projected.dims() == 3 && h0.dims() == 2,
                absl::InvalidArgumentError("projected must be [T, B, 4U] and h0 [B, U]"));
    const int64_t steps = projected.dim_size(0), batch = projected.dim_size(1), units = h0.dim_size(1);
    const int64_t width = 4 * units;
    OP_REQUIRES(context,
                projected.dim_size(2) == width && h0.dim_size(0) == batch && c0.shape() == h0.shape() &&
                    kernel.dim_size(0) == units && kernel.dim_size(1) == width && mask.dim_size(0) == steps &&
                    mask.dim_size(1) == batch && recurrent_mask.shape() == h0.shape(),
                absl::InvalidArgumentError("inconsistent LSTM kernel input shapes"));

    Tensor *outputs, *h_states, *c_states, *gates, *last_output, *last_h, *last_c;
    const TensorShape sequence({steps, batch, units}), state({batch, units});
    OP_REQUIRES_OK(context, context->allocate_output(0, sequence, &outputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, sequence, &h_states));
    OP_REQUIRES_OK(context, context->allocate_output(2, sequence, &c_states));
    OP_REQUIRES_OK(context, context->allocate_output(3, projected.shape(), &gates));
    OP_REQUIRES_OK(context, context->allocate_output(4, state, &last_output));
    OP_REQUIRES_OK(context, context->allocate_output(5, state, &last_h));
    OP_REQUIRES_OK(context, context->allocate_output(6, state, &last_c));

    const float* x = projected.flat<float>().data();
    const float* m = mask.flat<float>().data();
    const PackedWeights recurrent(kernel.flat<float>().data(), units, width, /*transpose=*/false);
    float* out = outputs->flat<float>().data();
    float* hs = h_states->flat<float>().data();
    float* cs = c_states->flat<float>().data();
    float* gs = gates->flat<float>().data();
    const bool zero_output = zero_output_for_mask_;

    auto work = [&](int64_t first, int64_t end) {
      const int64_t rows = end - first;
      Matrix h = StateRows(h0, first, rows), c = StateRows(c0, first, rows);
      Matrix output = Matrix::Zero(rows, units);
      Matrix h_in(rows, units), z(rows, width), c_new(rows, units), h_new(rows, units);
      const ConstMatrixMap dropout = StateRows(recurrent_mask, first, rows);
      for (int64_t t = 0; t < steps; ++t) {
        h_in.array() = h.array() * dropout.array();
        z = StepRows(x, t, batch, first, rows, width);
        recurrent.MultiplyAdd(h_in.data(), units, rows, z.data(), width);
        MatrixMap g = StepRows(gs, t, batch, first, rows, width);
        g.leftCols(2 * units).array() = z.leftCols(2 * units).array().logistic();
        g.middleCols(2 * units, units).array() = z.middleCols(2 * units, units).array().tanh();
        g.rightCols(units).array() = z.rightCols(units).array().logistic();
        c_new.array() = g.middleCols(units, units).array() * c.array() +
                        g.leftCols(units).array() * g.middleCols(2 * units, units).array();
        h_new.array() = g.rightCols(units).array() * c_new.array().tanh();
        MaskForwardStep(m + t * batch + first, zero_output, h_new, &c_new, h, &c, output);
        StepRows(out, t, batch, first, rows, units) = output;
        StepRows(hs, t, batch, first, rows, units) = h;
        StepRows(cs, t, batch, first, rows, units) = c;
      }
      StoreStateRows(output, first, last_output);
      StoreStateRows(h, first, last_h);
      StoreStateRows(c, first, last_c);
    };
    ForEachRowBlock(context, batch, std::max<int64_t>(1, steps * units * width * 2), work);
  }

 private:
  bool zero_output_for_mask_;
};

class LstmBackwardOp : public OpKernel {
 public:
  explicit LstmBackwardOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& kernel = context->input(0);
    const Tensor& c0 = context->input(1);
    const Tensor& mask = context->input(2);
    const Tensor& recurrent_mask = context->input(3);
    const Tensor& c_states = context->input(4);
    const Tensor& gates = context->input(5);
    const Tensor& d_outputs = context->input(6);
    const int64_t steps = gates.dim_size(0), batch = gates.dim_size(1), units = c0.dim_size(1);
    const int64_t width = 4 * units;
    OP_REQUIRES(context, gates.dim_size(2) == width && c_states.dim_size(0) == steps && d_outputs.shape() == c_states.shape(),
                absl::InvalidArgumentError("inconsistent LSTM gradient kernel input shapes"));

    Tensor *d_projected, *d_h0, *d_c0;
    OP_REQUIRES_OK(context, context->allocate_output(0, gates.shape(), &d_projected));
    OP_REQUIRES_OK(context, context->allocate_output(1, c0.shape(), &d_h0));
    OP_REQUIRES_OK(context, context->allocate_output(2, c0.shape(), &d_c0));

    const PackedWeights recurrent_t(kernel.flat<float>().data(), width, units, /*transpose=*/true);
    const float* m = mask.flat<float>().data();
    const float* cs = c_states.flat<float>().data();
    const float* gs = gates.flat<float>().data();
    const float* dout_all = d_outputs.flat<float>().data();
    float* dz_all = d_projected->flat<float>().data();
    const bool zero_output = zero_output_for_mask_;

    auto work = [&](int64_t first, int64_t end) {
      const int64_t rows = end - first;
      Matrix dh = StateRows(context->input(8), first, rows), dc = StateRows(context->input(9), first, rows);
      Matrix carry = StateRows(context->input(7), first, rows);
      const ConstMatrixMap dropout = StateRows(recurrent_mask, first, rows);
      Matrix dout(rows, units), dh_new(rows, units), dc_new(rows, units), tc(rows, units), dh_prev(rows, units);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const ConstMatrixMap g = StepRows(gs, t, batch, first, rows, width);
        const ConstMatrixMap c = StepRows(cs, t, batch, first, rows, units);
        const ConstMatrixMap c_prev = t > 0 ? StepRows(cs, t - 1, batch, first, rows, units) : StateRows(c0, first, rows);
        MatrixMap dz = StepRows(dz_all, t, batch, first, rows, width);
        auto i = g.leftCols(units).array();
        auto f = g.middleCols(units, units).array();
        auto gg = g.middleCols(2 * units, units).array();
        auto o = g.rightCols(units).array();
        dout = StepRows(dout_all, t, batch, first, rows, units) + carry;
        dh_new = dout + dh;
        tc.array() = c.array().tanh();
        dc_new.array() = dc.array() + dh_new.array() * o * (1.0f - tc.array().square());
        dz.leftCols(units).array() = dc_new.array() * gg * i * (1.0f - i);
        dz.middleCols(units, units).array() = dc_new.array() * c_prev.array() * f * (1.0f - f);
        dz.middleCols(2 * units, units).array() = dc_new.array() * i * (1.0f - gg.square());
        dz.rightCols(units).array() = dh_new.array() * tc.array() * o * (1.0f - o);
        dh_prev.setZero();
        recurrent_t.MultiplyAdd(dz.data(), width, rows, dh_prev.data(), units);
        const float* keep = m + t * batch + first;
        for (int64_t r = 0; r < rows; ++r) {
          if (keep[r] > 0.5f) {
            dh.row(r) = dh_prev.row(r).cwiseProduct(dropout.row(r));
            dc.row(r) = dc_new.row(r).cwiseProduct(g.row(r).segment(units, units));
            carry.row(r).setZero();
          } else {
            SkipRowBackward(r, zero_output, dout, carry, dz);
          }
        }
      }
      StoreStateRows(dh, first, d_h0);
      StoreStateRows(dc, first, d_c0);
    };
    ForEachRowBlock(context, batch, std::max<int64_t>(1, steps * units * width * 4), work);
  }

 private:
  bool zero_output_for_mask_;
};

REGISTER_KERNEL_BUILDER(Name("RnnpipeLstmForward").Device(tensorflow::DEVICE_CPU), LstmForwardOp);
REGISTER_KERNEL_BUILDER(Name("RnnpipeLstmBackward").Device(tensorflow::DEVICE_CPU), LstmBackwardOp);

// GRU, reset_after=True (Keras' default): z = s(x_z + hU_z + b_z), r = s(x_r + hU_r + b_r),
// n = tanh(x_n + r * (hU_n + b_n)), h' = z h + (1 - z) n. The input bias is already in `projected`.
REGISTER_OP("RnnpipeGruForward")
    .Input("projected: float")        // [T, B, 3U]: x W + b_input, gates ordered z, r, n
    .Input("h0: float")               // [B, U]
    .Input("recurrent_kernel: float") // [U, 3U]
    .Input("recurrent_bias: float")   // [3U]
    .Input("mask: float")             // [T, B]
    .Input("recurrent_mask: float")   // [B, U]
    .Attr("zero_output_for_mask: bool")
    .Output("outputs: float")         // [T, B, U]
    .Output("h_states: float")        // [T, B, U]
    .Output("gates: float")           // [T, B, 3U]: z, r, n
    .Output("recurrent_n: float")     // [T, B, U]: hU_n + b_n
    .Output("last_output: float")     // [B, U]
    .Output("last_h: float")          // [B, U]
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle projected, h0;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &projected));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &h0));
      ShapeHandle sequence = c->MakeShape({c->Dim(projected, 0), c->Dim(projected, 1), c->Dim(h0, 1)});
      c->set_output(0, sequence);
      c->set_output(1, sequence);
      c->set_output(2, projected);
      c->set_output(3, sequence);
      for (int i = 4; i < 6; ++i) c->set_output(i, c->MakeShape({c->Dim(projected, 1), c->Dim(h0, 1)}));
      return absl::OkStatus();
    });

REGISTER_OP("RnnpipeGruBackward")
    .Input("recurrent_kernel: float") // [U, 3U]
    .Input("h0: float")               // [B, U]
    .Input("mask: float")             // [T, B]
    .Input("recurrent_mask: float")   // [B, U]
    .Input("h_states: float")         // [T, B, U]
    .Input("gates: float")            // [T, B, 3U]
    .Input("recurrent_n: float")      // [T, B, U]
    .Input("d_outputs: float")        // [T, B, U]
    .Input("d_last_output: float")    // [B, U]
    .Input("d_last_h: float")         // [B, U]
    .Attr("zero_output_for_mask: bool")
    .Output("d_projected: float")     // [T, B, 3U]
    .Output("d_recurrent: float")     // [T, B, 3U]: gradient of hU + b_recurrent
    .Output("d_h0: float")            // [B, U]
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(5));
      c->set_output(1, c->input(5));
      c->set_output(2, c->input(1));
      return absl::OkStatus();
    });

class GruForwardOp : public OpKernel {
 public:
  explicit GruForwardOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& projected = context->input(0);
    const Tensor& h0 = context->input(1);
    const Tensor& kernel = context->input(2);
    const Tensor& bias = context->input(3);
    const Tensor& mask = context->input(4);
    const Tensor& recurrent_mask = context->input(5);
    OP_REQUIRES(context, projected.dims() == 3 && h0.dims() == 2,
                absl::InvalidArgumentError("projected must be [T, B, 3U] and h0 [B, U]"));
    const int64_t steps = projected.dim_size(0), batch = projected.dim_size(1), units = h0.dim_size(1);
    const int64_t width = 3 * units;
    OP_REQUIRES(context,
                projected.dim_size(2) == width && h0.dim_size(0) == batch && kernel.dim_size(0) == units &&
                    kernel.dim_size(1) == width && bias.NumElements() == width && mask.dim_size(0) == steps &&
                    mask.dim_size(1) == batch && recurrent_mask.shape() == h0.shape(),
                absl::InvalidArgumentError("inconsistent GRU kernel input shapes"));

    Tensor *outputs, *h_states, *gates, *recurrent_n, *last_output, *last_h;
    const TensorShape sequence({steps, batch, units}), state({batch, units});
    OP_REQUIRES_OK(context, context->allocate_output(0, sequence, &outputs));
    OP_REQUIRES_OK(context, context->allocate_output(1, sequence, &h_states));
    OP_REQUIRES_OK(context, context->allocate_output(2, projected.shape(), &gates));
    OP_REQUIRES_OK(context, context->allocate_output(3, sequence, &recurrent_n));
    OP_REQUIRES_OK(context, context->allocate_output(4, state, &last_output));
    OP_REQUIRES_OK(context, context->allocate_output(5, state, &last_h));

    const float* x = projected.flat<float>().data();
    const float* m = mask.flat<float>().data();
    const PackedWeights recurrent(kernel.flat<float>().data(), units, width, /*transpose=*/false);
    Eigen::Map<const Eigen::RowVectorXf> b(bias.flat<float>().data(), width);
    float* out = outputs->flat<float>().data();
    float* hs = h_states->flat<float>().data();
    float* gs = gates->flat<float>().data();
    float* ns = recurrent_n->flat<float>().data();
    const bool zero_output = zero_output_for_mask_;

    auto work = [&](int64_t first, int64_t end) {
      const int64_t rows = end - first;
      Matrix h = StateRows(h0, first, rows);
      Matrix output = Matrix::Zero(rows, units);
      Matrix h_in(rows, units), inner(rows, width), h_new(rows, units);
      const ConstMatrixMap dropout = StateRows(recurrent_mask, first, rows);
      for (int64_t t = 0; t < steps; ++t) {
        const ConstMatrixMap xt = StepRows(x, t, batch, first, rows, width);
        h_in.array() = h.array() * dropout.array();
        inner = b.replicate(rows, 1);
        recurrent.MultiplyAdd(h_in.data(), units, rows, inner.data(), width);
        MatrixMap g = StepRows(gs, t, batch, first, rows, width);
        MatrixMap n_part = StepRows(ns, t, batch, first, rows, units);
        g.leftCols(2 * units).array() = (xt.leftCols(2 * units) + inner.leftCols(2 * units)).array().logistic();
        n_part = inner.rightCols(units);
        g.rightCols(units).array() =
            (xt.rightCols(units).array() + g.middleCols(units, units).array() * n_part.array()).tanh();
        auto z = g.leftCols(units).array();
        h_new.array() = z * h.array() + (1.0f - z) * g.rightCols(units).array();
        MaskForwardStep(m + t * batch + first, zero_output, h_new, nullptr, h, nullptr, output);
        StepRows(out, t, batch, first, rows, units) = output;
        StepRows(hs, t, batch, first, rows, units) = h;
      }
      StoreStateRows(output, first, last_output);
      StoreStateRows(h, first, last_h);
    };
    ForEachRowBlock(context, batch, std::max<int64_t>(1, steps * units * width * 2), work);
  }

 private:
  bool zero_output_for_mask_;
};

class GruBackwardOp : public OpKernel {
 public:
  explicit GruBackwardOp(OpKernelConstruction* context) : OpKernel(context) {
    OP_REQUIRES_OK(context, context->GetAttr("zero_output_for_mask", &zero_output_for_mask_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& kernel = context->input(0);
    const Tensor& h0 = context->input(1);
    const Tensor& mask = context->input(2);
    const Tensor& recurrent_mask = context->input(3);
    const Tensor& h_states = context->input(4);
    const Tensor& gates = context->input(5);
    const Tensor& recurrent_n = context->input(6);
    const Tensor& d_outputs = context->input(7);
    const int64_t steps = gates.dim_size(0), batch = gates.dim_size(1), units = h0.dim_size(1);
    const int64_t width = 3 * units;
    OP_REQUIRES(context, gates.dim_size(2) == width && h_states.shape() == d_outputs.shape() &&
                             recurrent_n.shape() == h_states.shape() && h_states.dim_size(0) == steps,
                absl::InvalidArgumentError("inconsistent GRU gradient kernel input shapes"));

    Tensor *d_projected, *d_recurrent, *d_h0;
    OP_REQUIRES_OK(context, context->allocate_output(0, gates.shape(), &d_projected));
    OP_REQUIRES_OK(context, context->allocate_output(1, gates.shape(), &d_recurrent));
    OP_REQUIRES_OK(context, context->allocate_output(2, h0.shape(), &d_h0));

    const PackedWeights recurrent_t(kernel.flat<float>().data(), width, units, /*transpose=*/true);
    const float* m = mask.flat<float>().data();
    const float* hs = h_states.flat<float>().data();
    const float* gs = gates.flat<float>().data();
    const float* ns = recurrent_n.flat<float>().data();
    const float* dout_all = d_outputs.flat<float>().data();
    float* dx_all = d_projected->flat<float>().data();
    float* dr_all = d_recurrent->flat<float>().data();
    const bool zero_output = zero_output_for_mask_;

    auto work = [&](int64_t first, int64_t end) {
      const int64_t rows = end - first;
      Matrix dh = StateRows(context->input(9), first, rows);
      Matrix carry = StateRows(context->input(8), first, rows);
      const ConstMatrixMap dropout = StateRows(recurrent_mask, first, rows);
      Matrix dout(rows, units), dh_new(rows, units), dn(rows, units), dh_prev(rows, units);
      for (int64_t t = steps - 1; t >= 0; --t) {
        const ConstMatrixMap g = StepRows(gs, t, batch, first, rows, width);
        const ConstMatrixMap n_part = StepRows(ns, t, batch, first, rows, units);
        const ConstMatrixMap h_prev = t > 0 ? StepRows(hs, t - 1, batch, first, rows, units) : StateRows(h0, first, rows);
        MatrixMap dx = StepRows(dx_all, t, batch, first, rows, width);
        MatrixMap dr = StepRows(dr_all, t, batch, first, rows, width);
        auto z = g.leftCols(units).array();
        auto r = g.middleCols(units, units).array();
        auto n = g.rightCols(units).array();
        dout = StepRows(dout_all, t, batch, first, rows, units) + carry;
        dh_new = dout + dh;
        dn.array() = dh_new.array() * (1.0f - z) * (1.0f - n.square());
        dx.leftCols(units).array() = dh_new.array() * (h_prev.array() - n) * z * (1.0f - z);
        dx.middleCols(units, units).array() = dn.array() * n_part.array() * r * (1.0f - r);
        dx.rightCols(units) = dn;
        dr.leftCols(2 * units) = dx.leftCols(2 * units);
        dr.rightCols(units).array() = dn.array() * r;
        dh_prev.setZero();
        recurrent_t.MultiplyAdd(dr.data(), width, rows, dh_prev.data(), units);
        const float* keep = m + t * batch + first;
        for (int64_t row = 0; row < rows; ++row) {
          if (keep[row] > 0.5f) {
            dh.row(row) = dh_new.row(row).cwiseProduct(g.row(row).head(units)) +
                          dh_prev.row(row).cwiseProduct(dropout.row(row));
            carry.row(row).setZero();
          } else {
            SkipRowBackward(row, zero_output, dout, carry, dx);
            dr.row(row).setZero();
          }
        }
      }
      StoreStateRows(dh, first, d_h0);
    };
    ForEachRowBlock(context, batch, std::max<int64_t>(1, steps * units * width * 4), work);
  }

 private:
  bool zero_output_for_mask_;
};

REGISTER_KERNEL_BUILDER(Name("RnnpipeGruForward").Device(tensorflow::DEVICE_CPU), GruForwardOp);
REGISTER_KERNEL_BUILDER(Name("RnnpipeGruBackward").Device(tensorflow::DEVICE_CPU), GruBackwardOp);

}  // namespace rnnpipe
