// Recording: turning what a run measured into the RunRecord's tidy metric rows (queue -1 = the
// whole run). The front-end's own counts, the vIOMMU's message counts and latency percentiles
// (unavailable, not 0, when there were no samples), the in-process backend's statistics, the
// sink-mode checksum comparison and the counter rows. Nothing here measures or decides; a
// record's rows and names are the contract of the JSON records, the notebooks and the tests.
#pragma once

#include <optional>

#include "core/backend/backend.hpp"
#include "core/counters/run_counters.hpp"
#include "core/experiment/run.hpp"
#include "core/frontend/frontend.hpp"

namespace vhostlab::experiment {

// The front-end's rows, per queue and for the run, and its notes (queues that stopped early,
// fallbacks taken).
void RecordFrontend(const frontend::FrontendResult& f, RunRecord* rec);
// The in-process backend's rows (messages, service times, per-queue datapath counts).
void RecordBackend(const backend::BackendStats& b, RunRecord* rec);
// Sink mode: the sum of the bytes sent and, with the backend's statistics, whether its checksum
// of every byte it read matches (a mismatch counts as a verify error and adds a note).
void RecordSink(const frontend::FrontendResult& f,
                const std::optional<backend::BackendStats>& backend_stats, RunRecord* rec);
// The counter rows, per packet and per translation where the work is known.
void RecordCounters(const counters::RunCounters& run_counters, const frontend::FrontendResult& f,
                    const std::optional<backend::BackendStats>& backend_stats, RunRecord* rec);
// Queue scaling (queue_pairs > 1): the run's Mpps per queue pair as a run-level row. When
// `not_measurable` says why the rate cannot show how the datapath scales (cores shared between
// the threads of different queue pairs, a peer that forwards every queue on one core), the row
// is unavailable with that reason and the record gets a note, rather than a misleading number.
void RecordQueueScaling(uint32_t queue_pairs, const std::string& not_measurable,
                        RunRecord* rec);

}  // namespace vhostlab::experiment
