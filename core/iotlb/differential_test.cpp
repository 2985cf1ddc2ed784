// The differential test: long seeded random sequences of UPDATE / INVALIDATE / translate with
// adversarial ranges (testing/differential.hpp), applied to every design and to `reference`;
// any disagreement fails with the seed, the step and the operation that exposed it.
#include <gtest/gtest.h>

#include "core/iotlb/testing/all_designs.hpp"
#include "core/iotlb/testing/differential.hpp"

namespace vhostlab::iotlb {
namespace {

template <typename D>
class DifferentialTest : public ::testing::Test {};

TYPED_TEST_SUITE(DifferentialTest, testing::AllTestedDesigns, testing::DesignNameGenerator);

TYPED_TEST(DifferentialTest, MatchesReferenceOnRandomSequences) {
  constexpr int kSeeds = 12;
  constexpr int kOpsPerSeed = 10000;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    testing::SplitMix rng{seed * 0x5851f42d4c957f2dull};
    testing::OpGenerator<testing::SplitMix> gen(&rng);
    testing::Differential<TypeParam> diff;
    for (int step = 0; step < kOpsPerSeed; ++step) {
      const testing::Op op = gen.Next();
      const std::string err = diff.Apply(op);
      ASSERT_EQ(err, "") << "seed " << seed << " step " << step << ": " << testing::Describe(op);
    }
    const std::string err = diff.CheckAll();
    ASSERT_EQ(err, "") << "seed " << seed << " final sweep";
  }
}

TEST(DifferentialTest, SmallListEvictsYetNeverDisagrees) {
  testing::SplitMix rng{42};
  testing::OpGenerator<testing::SplitMix> gen(&rng);
  testing::Differential<BasicList<16>> diff;
  for (int step = 0; step < 20000; ++step) {
    const testing::Op op = gen.Next();
    ASSERT_EQ(diff.Apply(op), "") << "step " << step << ": " << testing::Describe(op);
  }
}

}  // namespace
}  // namespace vhostlab::iotlb
