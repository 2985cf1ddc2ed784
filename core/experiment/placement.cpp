// The run's placement policy (see placement.hpp for the rules and why they are so).
#include "core/experiment/placement.hpp"

#include <algorithm>
#include <absl/strings/str_join.h>

#include "core/topology/cpuset.hpp"

namespace vhostlab::experiment {
namespace {

bool Contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

std::string Count(std::size_t n, const std::string& what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

}  // namespace

bool Placement::BackendPinned(std::size_t w) const {
  return w < backend.size() && backend[w].size() < all.size();
}

int Placement::CpuSharedByBothSides() const {
  for (std::size_t w = 0; w < backend.size(); ++w)
    if (BackendPinned(w) && Contains(frontend, backend[w].front())) return backend[w].front();
  return -1;
}

std::vector<int> Placement::BackendWorkerCpus() const {
  std::vector<int> out;
  bool any_pinned = false;
  for (std::size_t w = 0; w < backend.size(); ++w) any_pinned |= BackendPinned(w);
  if (!any_pinned) return out;
  // BackendOptions::worker_cpus pins worker w to one CPU: a floating worker among pinned ones
  // cannot be expressed there, and the policy never plans that mix.
  for (const auto& set : backend) out.push_back(set.front());
  return out;
}

std::string Placement::Describe(const std::string& backend_label, bool per_queue) const {
  std::string s = "frontend";
  for (std::size_t q = 0; q < frontend.size(); ++q)
    s += " q" + std::to_string(q) + ":cpu" + std::to_string(frontend[q]);
  s += "; " + backend_label;
  if (backend.empty()) s += ": not placed (external)";
  for (std::size_t w = 0; w < backend.size(); ++w)
    s += (per_queue ? " q" : " t") + std::to_string(w) + ":cpu" +
         topology::FormatCpuList(backend[w]);
  s += "; control: cpu" + topology::FormatCpuList(control);
  return s;
}

Result<Placement> PlanPlacement(const PlacementRequest& r,
                                const std::vector<std::vector<int>>& cores) {
  Placement p;
  for (const auto& core : cores) p.all.insert(p.all.end(), core.begin(), core.end());
  std::sort(p.all.begin(), p.all.end());
  if (p.all.empty()) return Error{"placement: no CPU is available to this process"};
  if (Status s = topology::CheckCpusAllowed(r.frontend_cpus, p.all, "cpus"); !s.ok())
    return s.error();
  if (Status s = topology::CheckCpusAllowed(r.backend_cpus, p.all, "backend_cpus"); !s.ok())
    return s.error();
  if (!r.backend_cpus.empty() && r.backend_threads == 0)
    return Error{"backend_cpus: this backend's threads are not ours to place (an external "
                 "backend places its own; `vhostlab backend --cpus` does that for ours)"};

  const uint32_t nf = r.frontend_threads, nb = r.backend_threads;
  const bool auto_f = r.frontend_cpus.empty();
  const bool auto_b = r.backend_cpus.empty();
  std::vector<std::string> reasons;

  // Cores that no explicit list touches.
  std::vector<const std::vector<int>*> free;
  for (const auto& core : cores) {
    bool taken = false;
    for (int pu : core) taken |= Contains(r.frontend_cpus, pu) || Contains(r.backend_cpus, pu);
    if (!taken && !core.empty()) free.push_back(&core);
  }
  const std::size_t need = (auto_f ? nf : 0) + (auto_b ? nb : 0);
  p.backend.resize(nb);
  p.frontend.resize(nf);
  if (free.size() >= need + 1) {
    std::size_t lo = 0, hi = free.size();
    if (auto_b)
      for (uint32_t w = 0; w < nb; ++w) p.backend[w] = {free[lo++]->front()};
    if (auto_f)
      for (uint32_t q = 0; q < nf; ++q) p.frontend[q] = free[--hi]->front();
    for (std::size_t i = lo; i < hi; ++i)
      p.control.insert(p.control.end(), free[i]->begin(), free[i]->end());
    std::sort(p.control.begin(), p.control.end());
  } else {
    if (need == 0)
      reasons.push_back("every core holds a pinned thread: the control threads share them");
    else
      reasons.push_back(Count(p.all.size(), "CPU") + " (" + Count(cores.size(), "core") +
                        ") for " + Count(nf, "front-end queue thread") +
                        (nb ? ", " + Count(nb, r.backend_label + " thread") : std::string()) +
                        " and the control threads: keeping them apart takes " +
                        Count(nf + nb + 1, "core"));
    std::vector<int> peer_pinned = r.backend_cpus;
    if (auto_b) {
      for (uint32_t w = 0; w < nb; ++w) {
        if (r.backend_floats_when_shared) {
          p.backend[w] = p.all;
        } else {
          p.backend[w] = {p.all[w % p.all.size()]};
          peer_pinned.push_back(p.backend[w].front());
        }
      }
    }
    if (auto_f) {
      std::vector<int> candidates;
      for (int c : p.all)
        if (!Contains(peer_pinned, c)) candidates.push_back(c);
      if (candidates.empty()) candidates = p.all;
      const std::size_t m = candidates.size();
      for (uint32_t q = 0; q < nf; ++q) p.frontend[q] = candidates[m - 1 - q % m];
    }
    p.control = p.all;
  }
  if (!auto_f) {
    for (uint32_t q = 0; q < nf; ++q) p.frontend[q] = r.frontend_cpus[q % r.frontend_cpus.size()];
    if (r.frontend_cpus.size() < nf)
      reasons.push_back(Count(nf, "front-end queue thread") + " on " +
                        Count(r.frontend_cpus.size(), "CPU") + " (cpus)");
  }
  if (!auto_b) {
    for (uint32_t w = 0; w < nb; ++w) p.backend[w] = {r.backend_cpus[w % r.backend_cpus.size()]};
    if (r.backend_cpus.size() < nb)
      reasons.push_back(Count(nb, r.backend_label + " thread") + " on " +
                        Count(r.backend_cpus.size(), "CPU") + " (backend_cpus)");
  }
  // Pinned threads of both sides on one CPU (floating peer threads were counted above).
  if (!auto_f || !auto_b)
    if (const int cpu = p.CpuSharedByBothSides(); cpu >= 0)
      reasons.push_back("front-end and " + r.backend_label + " threads share CPU " +
                        std::to_string(cpu));
  p.shared = !reasons.empty();
  p.why_shared = absl::StrJoin(reasons, "; ");
  return p;
}

}  // namespace vhostlab::experiment
