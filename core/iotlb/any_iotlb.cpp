// One AnyIotlb implementation per registered design, instantiated through the registry.
#include "core/iotlb/any_iotlb.hpp"

#include "core/iotlb/common/entry_ops.hpp"
#include "core/iotlb/registry.hpp"

namespace vhostlab::iotlb {
namespace {

template <Design D>
class AnyIotlbImpl final : public AnyIotlb {
 public:
  std::string_view Name() const override { return D::kName; }
  InsertStatus Insert(IovaRange r, uint64_t uaddr, Perm perm) override {
    return d_.Insert(r, uaddr, perm);
  }
  std::size_t Invalidate(IovaRange r) override { return d_.Invalidate(r); }
  Translation Translate(uint64_t iova, uint64_t len, Perm perm) const override {
    return d_.Translate(iova, len, perm);
  }
  std::size_t Size() const override { return d_.Size(); }
  std::size_t MemoryBytes() const override { return d_.MemoryBytes(); }
  void Clear() override { d_.Clear(); }
  void BulkLoad(std::span<const Entry> entries) override { Fill(d_, entries); }

 private:
  D d_;
};

}  // namespace

std::unique_ptr<AnyIotlb> MakeIotlb(std::string_view name) {
  std::unique_ptr<AnyIotlb> out;
  VisitDesign(name, [&]<Design D>() { out = std::make_unique<AnyIotlbImpl<D>>(); });
  return out;
}

}  // namespace vhostlab::iotlb
