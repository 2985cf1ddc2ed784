// The run settings: ONE table (VHOSTLAB_RUN_SETTINGS below) that names every RunConfig field a
// user can set, with its type, range and help, and drives everything that reads or writes one:
//   - the TOML profile loader (profile.cpp): [workload] and [sweep] keys;
//   - the `vhostlab run` / `vhostlab compare` flags (SettingFlags in tools/cli/flags.cpp), their
//     help lines (with the default) and their range checks (usage errors, exit 2);
//   - the "config" object of every JSON record (record_json.cpp), in table order;
//   - the Python RunConfig properties, `vhostlab.run(**kwargs)` and `_core.run_settings()`
//     (pybind/experiment_bindings.cpp, pybind/vhostlab/_experiment.py).
// A new setting costs its field in RunConfig (run.hpp), one X(...) line here, and its use (e.g.
// the line in run.cpp that hands it to the front-end).
//
// Invariants:
//   - Every value from a flag, a profile or Python goes through Setting::Parse (a profile's
//     value after profile.cpp has checked its TOML type), which checks type and range: nothing is truncated, and a bad value is an
//     error naming the value and the allowed range (the caller prefixes the flag, key or name).
//   - Setting::Text(config) is accepted by Setting::Parse and gives the same value back
//     (settings_test.cpp walks the table to check it, and that each range end is enforced).
//   - Names are RunConfig's field names, which are also the JSON record keys and the Python
//     keywords; `key` is the TOML name (only queue_pairs differs: "queues").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/base/result.hpp"
#include "core/experiment/run.hpp"

namespace vhostlab::experiment {

// How a setting's value is written and checked. The C++ field type follows from RunConfig.
enum class SettingType {
  kText,        // any string (backend: self | dpdk | socket:PATH; a path)
  kChoice,      // one of `choices` ("static|lazy|strict|cold")
  kDesign,      // a registered IOTLB design name (iotlb::DesignNames())
  kPoll,        // busy | adaptive[:US] | interrupt (backend::ParsePollMode)
  kOnOff,       // bool; text "on" | "off", TOML true | false
  kFlag,        // bool set by a bare flag (--hugepages); text "on" | "off", TOML true | false
  kCount,       // unsigned integer in [min, max]; `pow2`: a power of two; `zero`: 0 allowed too
  kSeconds,     // a number of seconds; min 1: positive, min 0: 0 allowed too (unset)
  kPageSize,    // 4k | 2m (bytes 4096 | 2097152)
  kSize,        // bytes, or a number with k, m or g ("256m"), in [min, max]
  kFrameSizes,  // a list of frame sizes, each in [min, max]: "64,1500,9000"
  kCpuList,     // a list of CPU numbers, each in [min, max]: "0,1,4" (empty: automatic)
  kNameList,    // a list of names: "cycles,instructions"
};

// X(field, type, toml key, flag, metavar, min, max, choices, resets, help)
//   field:   the RunConfig member; also the JSON record key and the Python keyword.
//   key:     the [workload] key of a profile ("" = not settable from a profile).
//   flag:    the `vhostlab run` flag ("" = none); `compare` offers the workload subset.
//   min/max: the inclusive range of kCount, kSize and each item of kFrameSizes.
//   choices: kChoice's values ("a|b|c"); for kCount "pow2" (power of two) or "zero" (0 allowed
//            besides [min, max], meaning "the default").
//   resets:  a setting set back to its default when this one is set to non-zero (packets and
//            seconds exclude each other; a packet size replaces a mix).
//   help:    one sentence or more for --help, docstrings and run_settings(); the default is
//            appended by the CLI.
// The order is the order of a record's "config" object.
// clang-format off
#define VHOSTLAB_RUN_SETTINGS(X)                                                                  \
  X(profile, kText, "", "", "NAME", 0, 0, "", "",                                                 \
    "profile name (profiles/*.toml) or 'adhoc'; set by --profile")                                \
  X(backend, kText, "backend", "--backend", "B", 0, 0, "", "",                                    \
    "self: vhostlab's backend in this process (own threads, real socket in a temp dir); dpdk: "  \
    "spawn dpdk-testpmd with DPDK's vhost PMD (iommu-support=1, io forwarding); socket:PATH: "    \
    "connect to a backend already listening on PATH (e.g. `vhostlab backend`).")                  \
  X(iotlb, kDesign, "iotlb", "--iotlb", "DESIGN", 0, 0, "", "",                                   \
    "IOTLB design of the self backend (`vhostlab designs` lists them).")                          \
  X(iommu, kOnOff, "iommu", "--iommu", "on|off", 0, 0, "", "",                                    \
    "negotiate VIRTIO_F_IOMMU_PLATFORM: rings and buffers are IOVAs translated through the "     \
    "backend's device IOTLB.")                                                                    \
  X(mapping, kChoice, "mapping", "--mapping", "M", 0, 0, "static|lazy|strict|cold", "",          \
    "how the guest maps DMA: static (everything mapped before traffic), lazy (map per buffer, "  \
    "batched deferred invalidation like Linux's flush queue), strict (map before, unmap + "       \
    "INVALIDATE after every buffer), cold (nothing pushed but each used ring's page: the "       \
    "backend's MISSes drive every UPDATE, as with QEMU).")                                        \
  X(page_size, kPageSize, "page_size", "--page-size", "4k|2m", 0, 0, "", "",                      \
    "IOMMU page size: 4k or 2m (one IOTLB entry per page).")                                      \
  X(packets, kCount, "packets", "--packets", "N", 1, UINT64_MAX, "", "seconds",                   \
    "packets to send (over all queue pairs).")                                                    \
  X(seconds, kSeconds, "seconds", "--seconds", "S", 0, 0, "", "packets",                          \
    "run for S seconds instead of a packet count.")                                               \
  X(queue_pairs, kCount, "queues", "--queues", "N", 1, 64, "", "",                                \
    "queue pairs (MQ), one pinned front-end thread each.")                                        \
  X(ring_size, kCount, "ring_size", "--ring-size", "N", 8, 4096, "pow2", "",                      \
    "descriptors per ring.")                                                     \
  X(packet_size, kCount, "packet_size", "--packet-size", "N", 30, 9000, "", "packet_sizes",       \
    "frame bytes (virtio-net header excluded); clears a packet-size mix.")                                                  \
  X(packet_sizes, kFrameSizes, "packet_sizes", "--packet-sizes", "L", 30, 9000, "", "",           \
    "a packet-size mix instead, e.g. 64,1500,9000: frame seq is L[seq % n] bytes (with "         \
    "MRG_RXBUF, frames larger than a receive buffer arrive across several).")                     \
  X(event_idx, kOnOff, "event_idx", "--event-idx", "on|off", 0, 0, "", "",                        \
    "ack VIRTIO_RING_F_EVENT_IDX when the backend offers it: the driver kicks only when "        \
    "avail_event asks and leaves used_event behind while it polls (off: used->flags / "          \
    "avail->flags).")                                                                             \
  X(mrg_rxbuf, kOnOff, "mrg_rxbuf", "--mrg-rxbuf", "on|off", 0, 0, "", "",                        \
    "ack VIRTIO_NET_F_MRG_RXBUF when offered: receive buffers of --rx-buffer-size bytes, a "     \
    "larger frame spans several (num_buffers). off: every receive buffer holds the largest "     \
    "frame.")                                                                                     \
  X(rx_buffer_size, kCount, "rx_buffer_size", "--rx-buffer-size", "N", 64, 65536, "zero", "",    \
    "MRG_RXBUF: bytes of each receive buffer, header included; 0: 1536 + 12 (Linux's smallest " \
    "mergeable buffer).")                                                                         \
  X(mode, kChoice, "mode", "--mode", "M", 0, 0, "loopback|sink", "",                              \
    "loopback: every frame comes back and is checked byte for byte; sink: the backend only "     \
    "consumes (self or socket:PATH running `vhostlab backend --mode sink`); with self, its "      \
    "checksum of every byte read must equal the sum of the bytes sent.")                          \
  X(poll, kPoll, "poll", "--poll", "P", 0, 0, "", "",                                             \
    "how the self backend's workers wait: adaptive[:US] (poll US microseconds after the last "   \
    "work, 30 by default, with kicks suppressed, then sleep), busy (never sleep), interrupt "    \
    "(sleep at once). See `vhostlab backend --help`.")                                            \
  X(seed, kCount, "seed", "--seed", "N", 0, UINT64_MAX, "", "",                                   \
    "seed of the frame contents.")                                                                \
  X(scatter, kChoice, "scatter", "--scatter", "auto|on|straddle|off", 0, 0,                      \
    "auto|on|straddle|off", "",                                                                   \
    "buffer layout. straddle: half the buffers cross a page boundary (with the IOMMU, two "      \
    "IOTLB entries), guest pages in IOVA order. on: the same, over non-adjacent guest pages "     \
    "behind IOVA-contiguous mappings (with the IOMMU only; DPDK 22.11 joins IOVA-adjacent "       \
    "entries without checking uaddrs, so it shows verify errors). off: buffers at slot "         \
    "boundaries. auto = straddle for every backend, so IOMMU-off, IOMMU-on and DPDK rows share "  \
    "one layout (it moves Mpps by up to 1.5x on these VMs).")                                     \
  X(mem_regions, kCount, "mem_regions", "--regions", "N", 1, 8, "", "",                           \
    "guest memory regions (memfds) in SET_MEM_TABLE.")                                            \
  X(hugepages, kFlag, "hugepages", "--hugepages", "", 0, 0, "", "",                               \
    "back guest memory with 2 MiB hugetlb pages (falls back to 4 KiB pages with a warning when " \
    "the kernel has none reserved).")                                                             \
  X(flush_batch, kCount, "flush_batch", "--flush-batch", "N", 1, 65536, "", "",                   \
    "lazy mapping: buffers per deferred invalidation batch.")                                     \
  X(working_set, kSize, "working_set", "--working-set", "SIZE", 0, 1ull << 30, "", "",            \
    "spread each queue pair's buffers over SIZE bytes of guest memory (e.g. 256m = 64 Ki 4 KiB " \
    "pages; 0: only the ring's own buffers): posts fill the pages in a seeded random order, so " \
    "translations cover the whole working set.")                                                  \
  X(storm_interval, kCount, "storm_interval", "--storm-interval", "N", 0, 1ull << 32, "", "",     \
    "INVALIDATE storm (static or cold mapping): every N packets per queue, invalidate "          \
    "--storm-burst idle buffer pages (one acked INVALIDATE each) and map their IOVAs again onto " \
    "other guest pages, as a guest reusing freed IOVAs does. 0: no storm.")                       \
  X(storm_burst, kCount, "storm_burst", "--storm-burst", "N", 1, 4096, "", "",                    \
    "pages per storm burst (256 = Linux's flush queue).")                                         \
  X(timeout_seconds, kSeconds, "timeout_seconds", "--timeout", "S", 1, 0, "", "",                 \
    "bound on the whole run; it is stopped (not failed) after S.")                                \
  X(cpus, kCpuList, "cpus", "--cpus", "LIST", 0, 1023, "", "",                                    \
    "front-end queue threads' CPUs, e.g. 1 or 0,1 or 2-5 (queue q takes the q-th, wrapping; "    \
    "empty: automatic, from the last core down, away from the backend's and testpmd's).")        \
  X(backend_cpus, kCpuList, "backend_cpus", "--backend-cpus", "LIST", 0, 1023, "", "",            \
    "backend self: its workers' CPUs; dpdk: testpmd's lcores' CPU (the first); same syntax "     \
    "(empty: automatic, from the first core up when every thread can have its own core and one " \
    "is left for the control threads; otherwise self's workers float and testpmd takes the "     \
    "first CPU). socket:PATH backends place their own threads. Each record's context says "      \
    "where every thread ran (placement).")                                                        \
  X(burst, kCount, "burst", "--burst", "N", 1, 4096, "", "",                                      \
    "packets each front-end queue posts per pass, at most.")                                      \
  X(rate, kCount, "rate", "--rate", "PPS", 0, 1000000000, "", "",                                 \
    "target rate per queue in packets/s (0: open loop, as fast as the backend takes them).")      \
  X(traffic, kChoice, "traffic", "--traffic", "stream|drain", 0, 0, "stream|drain", "",           \
    "stream: the driver keeps the ring full while it checks what comes back, and Mpps is the "   \
    "whole loop's (on a 2-vCPU VM the front-end is then the slower side). drain: the driver "    \
    "posts a whole ring, waits (polling two used indexes) while the backend moves it, then "     \
    "checks every frame; Mpps is packets over the time the backend had work (first completion " \
    "to last), i.e. the backend's own speed. Not with --rate or a storm.")                        \
  X(warmup_packets, kCount, "warmup_packets", "--warmup-packets", "N", 0, 1ull << 32, "", "",    \
    "untimed packets per queue before the measured ones (on top of one untimed lap over a "      \
    "working set): warm caches, a settled backend.")                                              \
  X(counters, kNameList, "counters", "--counters", "LIST", 0, 0, "", "",                          \
    "events counted on every queue thread over the traffic window, comma-separated (empty: the " \
    "collector's default set; `vhostlab counters` lists what this machine can count). Rows go "  \
    "to the JSON record.")                                                                        \
  X(dpdk_testpmd, kText, "dpdk_testpmd", "--testpmd", "PATH", 0, 0, "", "",                       \
    "the testpmd binary for --backend dpdk.")
// clang-format on

// One row of the table, with the operations its type implies.
struct Setting {
  std::string_view name;
  SettingType type;
  std::string_view key;
  std::string_view flag;
  std::string_view metavar;
  uint64_t min;
  uint64_t max;
  std::string_view choices;
  std::string_view resets;
  std::string_view help;

  // Sets the field from its text form (a flag's value, a Python value written as text). The
  // error names the value and the allowed range, not the setting (callers add flag or key).
  Status Parse(RunConfig& config, std::string_view text) const;
  // The field's value as text that Parse accepts ("on", "4k", "64,1500", "256").
  std::string Text(const RunConfig& config) const;
  // The field's value in a record ("config" object): numbers, booleans, strings, arrays.
  nlohmann::ordered_json Json(const RunConfig& config) const;
  // "1..64", "a power of two in 8..4096", "static, lazy, strict or cold", ...: what Parse takes.
  std::string Allowed() const;

  // The operations of this row's type on its field, bound by the table (settings.cpp) from
  // the member pointer; callers use the member functions above.
  Status (*parse_fn)(const Setting&, RunConfig&, std::string_view);
  std::string (*text_fn)(const Setting&, const RunConfig&);
  nlohmann::ordered_json (*json_fn)(const RunConfig&);
  void (*reset_fn)(RunConfig&);  // back to RunConfig's default
};

// Every run setting, in table order.
const std::vector<Setting>& RunSettings();
// The setting called `name` (field name, e.g. "queue_pairs"); nullptr when there is none.
const Setting* FindSetting(std::string_view name);
// The setting whose profile key is `key` ("queues"); nullptr when there is none.
const Setting* FindSettingByKey(std::string_view key);

// The record's "config" object: every setting, by field name, in table order.
nlohmann::ordered_json ConfigJson(const RunConfig& config);

}  // namespace vhostlab::experiment
