// Plans and launches one forward: the split-K shape of the tensor-core kernel, or the chunks of the
// dequantize + cuBLASLt path, or the SIMT kernel. Host code; no exceptions, no device allocation.
#include "kernels/cuda/launch.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>

namespace ark::cuda {
namespace {

constexpr int kBlockTiles = 16;  // n8 tiles per mma block (linear_mma.cu: 8 warps x 2)
constexpr size_t kAlign = 256;

size_t align_up(size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }
int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

const char* status_message(int status) {
  switch (status) {
    case kOk:
      return "ok";
    case kBadArgument:
      return "bad argument";
    case kWorkspaceTooSmall:
      return "workspace too small";
    case kLaunchFailed:
      return "kernel launch failed";
    case kCublasFailed:
      return "cuBLASLt failed";
    default:
      return "unknown status";
  }
}

Plan make_plan(const PackedView& w, int64_t M, Family family, int sm_count) {
  Plan p;
  p.family = family;
  if (family == Family::kMma) {
    p.m_tiles = M <= 16 ? 1 : 4;
    const int64_t rows_max = std::min<int64_t>(M, 16 * p.m_tiles);
    // Staged x: rows_max x (128 * chunks + 8) halves within kMaxSmemBytes.
    const int64_t max_cps = std::max<int64_t>(
        1, (static_cast<int64_t>(kMaxSmemBytes) / (2 * rows_max) - 8) / kChunkK);
    const int64_t n_blocks = ceil_div(w.n8_tiles, kBlockTiles);
    const int64_t m_groups = ceil_div(M, 16 * p.m_tiles);
    // About one full wave (linear_mma.cu: 3 blocks per SM fit at M <= 16, 2 above): M = 1 on a 4096-wide
    // layer would otherwise leave most SMs idle. Phase 2 should tune this on the device.
    const int64_t target = (p.m_tiles == 1 ? 3 : 2) * static_cast<int64_t>(std::max(sm_count, 1));
    int64_t splits = std::clamp<int64_t>(ceil_div(target, n_blocks * m_groups), 1, w.chunks);
    int64_t cps = std::min(ceil_div(w.chunks, splits), max_cps);
    splits = ceil_div(w.chunks, cps);
    p.splits = static_cast<int>(splits);
    p.chunks_per_split = static_cast<int>(cps);
    p.smem_bytes = static_cast<size_t>(rows_max * (cps * kChunkK + 8) * 2);
    p.workspace_bytes = splits > 1 ? align_up(static_cast<size_t>(splits * M * w.n) * sizeof(float)) : 0;
  } else if (family == Family::kDequantGemm) {
    const int64_t kpn = w.k_packed();
    p.gather = w.k_source != nullptr || kpn != w.k;
    const int64_t rows = static_cast<int64_t>(kDequantChunkBytes) / (2 * kpn) / 128 * 128;
    p.rows_per_chunk = std::min(std::max<int64_t>(rows, 128), w.n8_tiles * kTileRows);
    p.workspace_bytes = (p.gather ? align_up(static_cast<size_t>(M * kpn * 2)) : 0) +
                        align_up(static_cast<size_t>(p.rows_per_chunk * kpn * 2)) + kCublasWorkspaceBytes;
  }
  return p;
}

namespace {

// y[M][rows] (leading dimension N) = x[M][kp] · wt[rows][kp]ᵀ + beta · y, through cuBLASLt (column-major:
// C = N-major y is wtᵀ·xᵀ with the weight operand transposed).
int cublas_chunk(cublasLtHandle_t h, bool bf16, const void* wt, const void* x, void* y, int64_t rows,
                 int64_t M, int64_t kpn, int64_t ldy, float beta, void* ws, size_t ws_bytes,
                 cudaStream_t stream) {
  const cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  int status = kCublasFailed;
  const cublasOperation_t trans = CUBLAS_OP_T, no = CUBLAS_OP_N;
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const float alpha = 1.0f;
  if (cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) goto done;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans));
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &no, sizeof(no));
  if (cublasLtMatrixLayoutCreate(&la, t, kpn, rows, kpn) != CUBLAS_STATUS_SUCCESS) goto done;
  if (cublasLtMatrixLayoutCreate(&lb, t, kpn, M, kpn) != CUBLAS_STATUS_SUCCESS) goto done;
  if (cublasLtMatrixLayoutCreate(&lc, t, rows, M, ldy) != CUBLAS_STATUS_SUCCESS) goto done;
  if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) goto done;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                       sizeof(ws_bytes));
  if (cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, lc, lc, pref, 1, &result, &found) !=
          CUBLAS_STATUS_SUCCESS ||
      found == 0)
    goto done;
  if (cublasLtMatmul(h, desc, &alpha, wt, la, x, lb, &beta, y, lc, y, lc, &result.algo, ws, ws_bytes,
                     stream) == CUBLAS_STATUS_SUCCESS)
    status = kOk;
done:
  if (pref) cublasLtMatmulPreferenceDestroy(pref);
  if (lc) cublasLtMatrixLayoutDestroy(lc);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (desc) cublasLtMatmulDescDestroy(desc);
  return status;
}

}  // namespace

int launch_linear(const PackedView& w, const Plan& plan, const void* x, void* y, int64_t M, bool bf16,
                  void* workspace, size_t workspace_size, CUstream_st* stream, void* cublaslt) {
  if (M <= 0) return M == 0 ? kOk : kBadArgument;
  if (!x || !y || !w.codes) return kBadArgument;
  if (plan.workspace_bytes > 0 && (!workspace || workspace_size < plan.workspace_bytes))
    return kWorkspaceTooSmall;
  switch (plan.family) {
    case Family::kSimt:
      return launch_simt(w, x, y, M, bf16, stream);
    case Family::kMma: {
      float* partial = static_cast<float*>(workspace);
      int s = launch_mma(w, plan, x, y, M, bf16, partial, stream);
      if (s == kOk && plan.splits > 1) s = launch_reduce(w, partial, plan.splits, y, M, bf16, stream);
      return s;
    }
    case Family::kDequantGemm: {
      if (!cublaslt) return kBadArgument;
      auto* base = static_cast<unsigned char*>(workspace);
      const int64_t kpn = w.k_packed();
      const void* xs = x;
      size_t off = 0;
      if (plan.gather) {
        int s = launch_gather(w, x, base, M, bf16, stream);
        if (s != kOk) return s;
        xs = base;
        off = align_up(static_cast<size_t>(M * kpn * 2));
      }
      void* wt = base + off;
      off += align_up(static_cast<size_t>(plan.rows_per_chunk * kpn * 2));
      void* cublas_ws = base + off;
      float beta = 0.0f;
      if (w.bias) {
        int s = launch_bias_fill(w, y, M, bf16, stream);
        if (s != kOk) return s;
        beta = 1.0f;
      }
      for (int64_t n0 = 0; n0 < w.n; n0 += plan.rows_per_chunk) {
        const int64_t rows = std::min(plan.rows_per_chunk, w.n - n0);
        int s = launch_dequant(w, n0, rows, wt, bf16, stream);
        if (s != kOk) return s;
        s = cublas_chunk(static_cast<cublasLtHandle_t>(cublaslt), bf16, wt, xs,
                         static_cast<unsigned char*>(y) + n0 * 2, rows, M, kpn, w.n, beta, cublas_ws,
                         kCublasWorkspaceBytes, stream);
        if (s != kOk) return s;
      }
      return kOk;
    }
  }
  return kBadArgument;
}

}  // namespace ark::cuda
