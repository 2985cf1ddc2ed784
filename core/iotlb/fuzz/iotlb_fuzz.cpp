// libFuzzer target: the differential check of testing/differential.hpp driven by fuzz input.
//
// The input is read as little-endian 64-bit words (zero once exhausted) that feed OpGenerator,
// so every input is a valid operation sequence; each sequence is applied to every tested design
// alongside `reference`, and any disagreement aborts with the operation that exposed it.
// Build and run (about 1500-3000 inputs/s on this VM):
//   CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DVHOSTLAB_FUZZ=ON
//       -DVHOSTLAB_BUILD_PYTHON=OFF -DVHOSTLAB_BUILD_BENCH=OFF
//   ninja -C build-fuzz iotlb_fuzz
//   mkdir -p /tmp/iotlb-corpus && build-fuzz/core/iotlb/iotlb_fuzz -max_total_time=60
//       -max_len=4096 /tmp/iotlb-corpus
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/iotlb/registry.hpp"
#include "core/iotlb/testing/differential.hpp"

namespace vhostlab::iotlb {
namespace {

struct ByteSource {
  const uint8_t* data;
  std::size_t size;
  uint64_t Next() {
    uint64_t v = 0;
    const std::size_t n = size < 8 ? size : 8;
    std::memcpy(&v, data, n);
    data += n;
    size -= n;
    return v;
  }
  bool empty() const { return size == 0; }
};

template <Design D>
void RunOne(const uint8_t* data, std::size_t size) {
  ByteSource src{data, size};
  testing::OpGenerator<ByteSource> gen(&src);
  testing::Differential<D> diff;
  for (int step = 0; !src.empty() && step < 4096; ++step) {
    const testing::Op op = gen.Next();
    const std::string err = diff.Apply(op);
    if (!err.empty()) {
      std::fprintf(stderr, "%s: step %d: %s: %s\n", std::string(D::kName).c_str(), step,
                   testing::Describe(op).c_str(), err.c_str());
      std::abort();
    }
  }
  const std::string err = diff.CheckAll();
  if (!err.empty()) {
    std::fprintf(stderr, "%s: final sweep: %s\n", std::string(D::kName).c_str(), err.c_str());
    std::abort();
  }
}

}  // namespace
}  // namespace vhostlab::iotlb

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace vhostlab::iotlb;
  ForEachDesign([&]<Design D>() { RunOne<D>(data, size); });
  RunOne<SortedOther>(data, size);
  RunOne<MicroCacheHashDirect>(data, size);
  RunOne<BasicList<16>>(data, size);  // small enough that fuzz inputs reach eviction
  return 0;
}
