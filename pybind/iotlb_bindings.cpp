// Python bindings of the IOTLB designs: create by name, insert / invalidate / translate, stats.
//
// Python speaks the protocol's (iova, size) form; the designs speak inclusive ranges. The
// conversion here refuses what the protocol layer refuses (size 0, ranges that wrap past
// 2^64 - 1), so a Python caller cannot hand a design a range its contract excludes.
//
// Tables are iotlb::AnyIotlb (core/iotlb/any_iotlb.hpp, the project's type-erased adapter):
// one virtual call per operation, which is noise next to a Python call. translate_batch() runs
// its loop in C++ with the GIL released, so what it measures is the design plus one virtual
// call per lookup (bench/'s "virtual" dispatch), not Python.
#include <absl/strings/str_join.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdio>
#include <memory>
#include <string>

#include "core/iotlb/any_iotlb.hpp"
#include "core/iotlb/registry.hpp"
#include "pybind/bindings.hpp"

namespace py = pybind11;

namespace vhostlab::pybind {
namespace {

iotlb::Perm ParsePerm(const std::string& s) {
  if (s == "r" || s == "ro") return iotlb::Perm::kRead;
  if (s == "w" || s == "wo") return iotlb::Perm::kWrite;
  if (s == "rw") return iotlb::Perm::kReadWrite;
  throw py::value_error("perm must be 'r', 'w' or 'rw', not '" + s + "'");
}

iotlb::IovaRange ToRange(uint64_t iova, uint64_t size) {
  if (size == 0) throw py::value_error("size must be at least 1");
  if (iova + (size - 1) < iova) {
    throw py::value_error("range [iova, iova + size) wraps past 2**64 - 1");
  }
  return {iova, iova + (size - 1)};
}

const char* OutcomeName(iotlb::Outcome o) {
  switch (o) {
    case iotlb::Outcome::kHit:
      return "hit";
    case iotlb::Outcome::kMiss:
      return "miss";
    case iotlb::Outcome::kAccessFail:
      return "access_fail";
  }
  return "?";
}

struct BatchResult {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t access_fails = 0;
  uint64_t bytes = 0;  // sum of granted lengths (keeps the loop from being optimised away)
};

BatchResult TranslateBatch(const iotlb::AnyIotlb& table, const uint64_t* iovas, std::size_t n,
                           uint64_t len, iotlb::Perm p) {
  BatchResult out;
  for (std::size_t i = 0; i < n; ++i) {
    const iotlb::Translation t = table.Translate(iovas[i], len, p);
    switch (t.outcome) {
      case iotlb::Outcome::kHit:
        ++out.hits;
        out.bytes += t.len;
        break;
      case iotlb::Outcome::kMiss:
        ++out.misses;
        break;
      case iotlb::Outcome::kAccessFail:
        ++out.access_fails;
        break;
    }
  }
  return out;
}

class PyIotlb {
 public:
  explicit PyIotlb(const std::string& name) : table_(iotlb::MakeIotlb(name)) {
    if (!table_) {
      throw py::value_error("unknown IOTLB design '" + name +
                            "' (designs: " + absl::StrJoin(iotlb::DesignNames(), ", ") + ")");
    }
  }
  iotlb::AnyIotlb& table() { return *table_; }
  const iotlb::AnyIotlb& table() const { return *table_; }

 private:
  std::unique_ptr<iotlb::AnyIotlb> table_;
};

}  // namespace

void RegisterIotlb(py::module_& m) {
  m.def("designs", &iotlb::DesignNames,
        "Names of the registered IOTLB designs, in registration order (the --iotlb values of "
        "the CLI).");

  py::class_<iotlb::Translation>(m, "Translation",
                                 "The answer for the first contiguous piece of a lookup.")
      .def_property_readonly(
          "outcome", [](const iotlb::Translation& t) { return OutcomeName(t.outcome); },
          "'hit', 'miss' (iova not covered) or 'access_fail' (covered "
          "without the permission asked for)")
      .def_property_readonly("hit", &iotlb::Translation::hit)
      .def_property_readonly(
          "uaddr",
          [](const iotlb::Translation& t) -> py::object {
            return t.hit() ? py::int_(t.uaddr) : py::object(py::none());
          },
          "front-end user address of iova on a hit, else None")
      .def_property_readonly(
          "len",
          [](const iotlb::Translation& t) -> py::object {
            return t.hit() ? py::int_(t.len) : py::object(py::none());
          },
          "contiguous bytes granted from iova on a hit (<= the length asked), else None")
      .def("__bool__", &iotlb::Translation::hit)
      .def("__repr__", [](const iotlb::Translation& t) {
        if (!t.hit()) return std::string("Translation(") + OutcomeName(t.outcome) + ")";
        char buf[96];
        std::snprintf(buf, sizeof buf, "Translation(hit, uaddr=0x%llx, len=%llu)",
                      static_cast<unsigned long long>(t.uaddr),
                      static_cast<unsigned long long>(t.len));
        return std::string(buf);
      });

  py::class_<PyIotlb>(m, "Iotlb",
                      "An IOTLB of one design, created by name (see designs()).\n\n"
                      "Maps IOVA ranges to front-end user addresses with permissions, as "
                      "VHOST_USER_IOTLB_MSG UPDATE/INVALIDATE describe them. Not thread-safe.")
      .def(py::init<const std::string&>(), py::arg("design"),
           "Creates an empty table of the named design; ValueError for an unknown name.")
      .def_property_readonly("design",
                             [](const PyIotlb& t) { return std::string(t.table().Name()); })
      .def(
          "insert",
          [](PyIotlb& t, uint64_t iova, uint64_t size, uint64_t uaddr, const std::string& perm) {
            const iotlb::InsertStatus s =
                t.table().Insert(ToRange(iova, size), uaddr, ParsePerm(perm));
            if (s == iotlb::InsertStatus::kInvalidRange)
              throw py::value_error("invalid range or permission");
            return s == iotlb::InsertStatus::kEvicted ? "evicted" : "ok";
          },
          py::arg("iova"), py::arg("size"), py::arg("uaddr"), py::arg("perm") = "rw",
          "An UPDATE: maps [iova, iova + size) to uaddr with perm ('r', 'w', 'rw'), replacing "
          "whatever it overlaps. Returns 'ok', or 'evicted' when a capacity-limited design "
          "dropped an older entry to make room.")
      .def(
          "invalidate",
          [](PyIotlb& t, uint64_t iova, uint64_t size) {
            return t.table().Invalidate(ToRange(iova, size));
          },
          py::arg("iova"), py::arg("size"),
          "An INVALIDATE: removes (or trims) every entry overlapping [iova, iova + size). "
          "Returns the number of entries removed or trimmed.")
      .def(
          "invalidate_all", [](PyIotlb& t) { return t.table().Invalidate(iotlb::kFullRange); },
          "Invalidates the whole IOVA space [0, 2**64 - 1].")
      .def(
          "translate",
          [](const PyIotlb& t, uint64_t iova, uint64_t length, const std::string& perm) {
            if (length == 0) throw py::value_error("length must be at least 1");
            if (iova + (length - 1) < iova) throw py::value_error("iova + length wraps");
            return t.table().Translate(iova, length, ParsePerm(perm));
          },
          py::arg("iova"), py::arg("length") = 1, py::arg("perm") = "r",
          "Looks up [iova, iova + length) needing perm. Returns a Translation for the first "
          "contiguous piece: ask again at iova + t.len for the rest.")
      .def(
          "translate_batch",
          [](const PyIotlb& t,
             py::array_t<uint64_t, py::array::c_style | py::array::forcecast> iovas,
             uint64_t length, const std::string& perm) {
            if (length == 0) throw py::value_error("length must be at least 1");
            const iotlb::Perm p = ParsePerm(perm);
            const uint64_t* data = iovas.data();
            const std::size_t n = static_cast<std::size_t>(iovas.size());
            BatchResult r;
            {
              py::gil_scoped_release release;
              r = TranslateBatch(t.table(), data, n, length, p);
            }
            py::dict d;
            d["translations"] = n;
            d["hits"] = r.hits;
            d["misses"] = r.misses;
            d["access_fails"] = r.access_fails;
            d["bytes"] = r.bytes;
            return d;
          },
          py::arg("iovas"), py::arg("length") = 1, py::arg("perm") = "r",
          "Translates every iova of a numpy uint64 array in one C++ loop (the GIL released; one "
          "virtual call per lookup), so counters around it measure the design rather than "
          "Python. Returns a dict: translations, hits, misses, access_fails, bytes.")
      .def(
          "clear", [](PyIotlb& t) { t.table().Clear(); }, "Removes every entry.")
      .def(
          "size", [](const PyIotlb& t) { return t.table().Size(); }, "Number of live entries.")
      .def(
          "memory_bytes", [](const PyIotlb& t) { return t.table().MemoryBytes(); },
          "Heap + inline bytes the table uses.")
      .def("__len__", [](const PyIotlb& t) { return t.table().Size(); })
      .def("__repr__", [](const PyIotlb& t) {
        return "Iotlb('" + std::string(t.table().Name()) +
               "', entries=" + std::to_string(t.table().Size()) + ")";
      });
}

}  // namespace vhostlab::pybind
