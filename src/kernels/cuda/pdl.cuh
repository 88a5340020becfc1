// Programmatic dependent launch (sm_90): a kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization
// may start while the kernel before it on the stream is still running, once every block of that one has
// executed launch_dependents() (or exited). Such a kernel reads only what no earlier kernel writes (the
// layer's weights) before wait(), which returns when the kernel before it has finished and its writes are
// visible; activations and every write come after. The decode kernels and their reduces (linear_gemv.cu) are
// launched this way on sm_90 devices (Plan::gemv_pdl_in, Plan::gemv_pdl): a layer's first weight copies
// overlap the previous layer's end. On a kernel launched without the attribute both calls are no-ops; before
// sm_90 they compile to nothing.
#pragma once

#include <cuda_runtime.h>

namespace ark::cuda::pdl {

__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// One launch of `kernel`: a programmatic dependent of the previous kernel on the stream when `dependent`, and
// with cluster_y > 1 in clusters of 1 x cluster_y x 1 blocks.
template <typename K, typename... Args>
cudaError_t launch(bool dependent, int cluster_y, dim3 grid, dim3 block, size_t smem, cudaStream_t s, K kernel,
                   Args... args) {
  if (!dependent && cluster_y <= 1) {
    kernel<<<grid, block, smem, s>>>(args...);
    return cudaGetLastError();
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  int n = 0;
  if (dependent) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster_y > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = 1;
    attr[n].val.clusterDim.y = static_cast<unsigned>(cluster_y);
    attr[n++].val.clusterDim.z = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, args...);
}

}  // namespace ark::cuda::pdl
