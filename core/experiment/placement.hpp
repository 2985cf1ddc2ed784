// The placement policy of a run: which CPUs the front-end's queue threads, the peer's threads
// (our backend's workers, testpmd's lcores) and the control threads run on. One policy for every
// thread, planned once per run from the CPUs the process may use (topology::AllowedCores) and
// applied through core/topology (hwloc binding); the plan is recorded in every record's context
// ("placement") with a note whenever cores had to be shared.
//
// Automatic policy (a side given explicitly keeps its list; the other sides plan around it):
//   apart  - when the free cores number at least (threads to place + 1): backend threads take
//            one core each from the bottom, front-end queue threads one core each from the top
//            (as `--cpus` has defaulted to since the first release), and the control threads
//            (the front-end's supervising and backend-channel threads, our backend's control
//            thread, the vIOMMU service) get every core left, at least one. Only the first PU
//            of a core is used for a pinned thread: its SMT sibling would share its pipeline.
//   shared - otherwise (the 2-vCPU machines here): front-end queue thread q takes the q-th CPU
//            from the top, skipping CPUs a pinned peer thread holds when there are others;
//            threads of a peer that sleeps when idle (our backend's workers) float over every
//            CPU, like the control threads: pinning the worker away from the front-end on one
//            core each measured 2x slower on the 2-vCPU VMs here, where each cross-core wake-up
//            of a sleeping worker is an IPI (a VM exit) and the control threads had no core of
//            their own. A busy-polling peer (testpmd) is pinned to the bottom CPU.
// Explicit lists that overlap each other, or give a side fewer CPUs than it has threads
// (thread i takes list[i % size]), also share cores, and say so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/base/result.hpp"

namespace vhostlab::experiment {

struct PlacementRequest {
  uint32_t frontend_threads = 1;  // one per queue pair
  uint32_t backend_threads = 0;   // the peer's threads that we place; 0: an external peer
  // Whether the peer's threads may float over all CPUs when there are too few to keep them
  // apart (our backend's workers sleep on eventfds when idle); false: they busy-poll and must
  // stay pinned even then (testpmd).
  bool backend_floats_when_shared = true;
  std::string backend_label = "backend";  // "backend" (our workers), "testpmd" (its lcores)
  std::vector<int> frontend_cpus;  // explicit (RunConfig::cpus); empty: automatic
  std::vector<int> backend_cpus;   // explicit (RunConfig::backend_cpus); empty: automatic
};

struct Placement {
  std::vector<int> frontend;               // CPU of front-end queue thread q
  std::vector<std::vector<int>> backend;   // CPUs of peer thread w (several: it floats)
  std::vector<int> control;                // CPUs every control thread may use
  std::vector<int> all;                    // every CPU the plan could use
  bool shared = false;                     // some threads share cores with others
  std::string why_shared;                  // what shares, and how many cores would avoid it

  // True when peer thread w is pinned to fewer than all CPUs.
  bool BackendPinned(std::size_t w) const;
  // The CPU that a pinned peer thread shares with a front-end queue thread; -1 when none does.
  int CpuSharedByBothSides() const;
  // The peer threads' CPUs as one per-thread list for BackendOptions::worker_cpus: empty when
  // every one floats.
  std::vector<int> BackendWorkerCpus() const;
  // "frontend q0:cpu1 q1:cpu1; backend q0:cpu0-1; control: cpu0-1" (per thread, in order);
  // peer threads that serve no one queue (testpmd's lcores) read "testpmd t0:cpu0".
  std::string Describe(const std::string& backend_label, bool per_queue = true) const;
};

// Plans with `cores` = the allowed PUs grouped by core (topology::AllowedCores(), or a
// synthetic machine in tests). Errors: no CPU at all, or an explicit CPU outside `cores`.
Result<Placement> PlanPlacement(const PlacementRequest& request,
                                const std::vector<std::vector<int>>& cores);

}  // namespace vhostlab::experiment
