// `vhostlab backend`: a standalone vhost-user backend (virtio-net, device IOTLB) that any
// front-end can drive: QEMU, DPDK virtio-user, or `vhostlab run --backend socket:PATH`.
// Runs until SIGINT/SIGTERM, then stops the workers and prints the counters.
#include <signal.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/backend/backend.hpp"
#include "core/backend/session.hpp"
#include "core/base/log.hpp"
#include "core/iotlb/registry.hpp"
#include "core/protocol/messages.hpp"
#include "core/topology/cpuset.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

constexpr const char* kUsage =
    "usage: vhostlab backend --socket PATH [--client] [--iotlb DESIGN] [--mode loopback|sink]\n"
    "                        [--queues N] [--poll busy|adaptive[:US]|interrupt] [--once]\n"
    "                        [--record FILE [--record-limit N]]\n"
    "                        [--iotlb-max-entries N] [--peer-timeout-ms MS]\n"
    "                        [--no-event-idx] [--no-mrg-rxbuf] [--cpus LIST]\n"
    "                        [--verbose|--quiet]\n";

constexpr const char* kDescription =
    "Runs vhostlab's vhost-user backend (the spec's \"slave\"): a virtio-net device over split\n"
    "rings with a device IOTLB (VHOST_USER_IOTLB_MSG), one worker thread per queue pair.\n"
    "It serves one front-end at a time and, when that front-end disconnects, resets all state\n"
    "and waits for the next one. SIGINT or SIGTERM stops it and prints per-queue counters.\n";

constexpr const char* kFooter =
    "Offered virtio features: VERSION_1, IOMMU_PLATFORM, PROTOCOL_FEATURES, INDIRECT_DESC,\n"
    "EVENT_IDX and NET_MRG_RXBUF (unless turned off), + NET_CTRL_VQ and NET_MQ when N > 1.\n"
    "Protocol features: MQ, REPLY_ACK, BACKEND_REQ,\n"
    "CONFIGURE_MEM_SLOTS, STATUS. With IOMMU_PLATFORM negotiated, ring and descriptor\n"
    "addresses are IOVAs translated only through the IOTLB; a miss sends IOTLB MISS on the\n"
    "backend channel and the descriptor is retried, never dropped.\n"
    "\n"
    "examples:\n"
    "  vhostlab backend --socket /tmp/vl.sock --mode sink\n"
    "  dpdk-testpmd --no-huge -m 512 --no-pci --file-prefix=vu \\\n"
    "      --vdev 'net_virtio_user0,path=/tmp/vl.sock,queues=1' -- --forward-mode=txonly\n"
    "  qemu-system-x86_64 ... -chardev socket,id=c0,path=/tmp/vl.sock \\\n"
    "      -netdev vhost-user,id=n0,chardev=c0 \\\n"
    "      -device virtio-net-pci,netdev=n0,iommu_platform=on,ats=on  (+ -device intel-iommu)\n";

int RunBackend(int argc, char** argv) {
  backend::BackendOptions opts;
  std::string mode = "loopback", poll, cpus;
  bool no_event_idx = false, no_mrg_rxbuf = false, once = false;
  CLI::App app("", "backend");
  Describe(app, kUsage, kDescription, kFooter);
  app.add_option("--socket", opts.socket_path,
                 Wrap("Unix socket path (required). Listened on, or connected to with --client."))
      ->type_name("PATH")
      ->required();
  app.add_flag("--client", opts.client,
               Wrap("connect to a front-end that listens on PATH (QEMU 'server=on', DPDK "
                    "virtio-user 'server=1') instead of listening; reconnects after a "
                    "disconnect."));
  const std::vector<std::string> designs = iotlb::DesignNames();
  app.add_option("--iotlb", opts.iotlb,
                 Wrap("IOTLB design the queue workers translate through (default hash, the "
                      "fastest measured; `vhostlab designs` says what each is for). Available: " +
                      DesignNamesJoined() + "."))
      ->type_name("DESIGN")
      ->check(CLI::IsMember(designs).description(""));
  app.add_option("--mode", mode,
                 "loopback (default): what the guest transmits on TX queue 2k+1 comes back\n"
                 "byte for byte on RX queue 2k of the same pair (like testpmd io forwarding\n"
                 "on one port); a TX packet waits for an RX buffer, it is never dropped.\n"
                 "sink: TX only; every packet is read (through the IOTLB) and checksummed.")
      ->type_name("MODE")
      ->check(CLI::IsMember({"loopback", "sink"}).description(""));
  app.add_option("--queues", opts.queue_pairs,
                 Wrap("queue pairs offered (GET_QUEUE_NUM answers N; MQ); default 1, max 64."))
      ->type_name("N")
      ->check(CLI::Range(1, 64).description(""));
  app.add_option("--cpus", cpus,
                 Wrap("pin worker p to the p-th CPU of LIST (wrapping): a plain list such as 2,3 "
                      "keeps its order; hwloc ranges (2-5,8) and masks (0xf) are sorted. Default: "
                      "workers are not pinned."))
      ->type_name("LIST")
      ->check(CLI::Validator(
          [&opts](std::string& v) {
            // Worker p on the p-th CPU (wrapping): a plain list keeps its order, ranges are
            // hwloc's. Every CPU must be one this process may use.
            auto parsed = topology::ParseCpuList(v);
            if (!parsed.ok()) return parsed.error().message;
            // CLI11 names the flag in front of the message.
            Status st = topology::CheckCpusAllowed(*parsed, topology::AllowedCpus(), "");
            if (!st.ok()) return st.message();
            opts.worker_cpus = *parsed;
            return std::string();
          },
          "", "cpus"));
  app.add_option("--poll", poll,
                 "how workers wait for work (default adaptive:30):\n"
                 "  adaptive[:US]  keep polling the rings (and the control thread its\n"
                 "                 socket) for US microseconds after the last work, with\n"
                 "                 guest kicks suppressed (VRING_USED_F_NO_NOTIFY), then\n"
                 "                 sleep until a kick;\n"
                 "  busy           workers never sleep (a core each, like DPDK's PMD);\n"
                 "  interrupt      sleep as soon as a pass finds nothing (every kick and\n"
                 "                 every message wakes a thread).")
      ->type_name("MODE")
      ->check(CLI::Validator(
          [&opts](std::string& v) {
            Status st = backend::ParsePollMode(v, &opts.poll, &opts.spin_us);
            return st.ok() ? std::string() : st.message();
          },
          "", "poll"));
  app.add_flag("--once", once,
               "exit after the first front-end disconnects instead of waiting for more.");
  app.add_option("--record", opts.record_path,
                 Wrap("record an IOTLB trace: every UPDATE/INVALIDATE/MISS with timestamps, the "
                      "memory table, and every translation the datapath asked for (iova, length, "
                      "permission, queue, outcome). Written when the backend stops. Replay it "
                      "with `vhostlab replay FILE`; read it with vhostlab.load_trace(FILE)."))
      ->type_name("FILE");
  app.add_option("--record-limit", opts.record_limit,
                 Wrap("stop recording after N records (40 bytes each; default 10000000); the "
                      "file then says it is truncated."))
      ->type_name("N")
      ->check(CLI::Validator(CLI::PositiveNumber).description(""));
  app.add_option("--iotlb-max-entries", opts.iotlb_max_entries,
                 Wrap("live IOTLB entries one front-end may hold (default 262144), 1..4294967296; "
                      "an UPDATE past it is refused with a non-zero reply and counted, so a "
                      "front-end cannot make the backend grow without bound."))
      ->type_name("N")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 32).description(""));
  app.add_option("--peer-timeout-ms", opts.peer_timeout_ms,
                 Wrap("drop a front-end that half-sends a message or stops reading replies for "
                      "MS milliseconds (default 3000, 10..3600000), so the next one is served."))
      ->type_name("MS")
      ->check(CLI::Range(10, 3'600'000).description(""));
  app.add_flag("--no-event-idx", no_event_idx,
               Wrap("do not offer VIRTIO_RING_F_EVENT_IDX (offered by default: kicks and "
                    "interrupts are then suppressed through avail_event/used_event)."));
  app.add_flag("--no-mrg-rxbuf", no_mrg_rxbuf,
               Wrap("do not offer VIRTIO_NET_F_MRG_RXBUF (offered by default: a frame larger "
                    "than one RX buffer then spans several; without it, it is dropped)."));
  AddLogFlags(app, /*quiet_errors_only=*/true);
  if (const int status = Parse(app, argc, argv); status >= 0) return status;
  opts.mode = mode == "sink" ? backend::DeviceMode::kSink : backend::DeviceMode::kLoopback;
  opts.event_idx = !no_event_idx;
  opts.mrg_rxbuf = !no_mrg_rxbuf;
  opts.serve_forever = !once;
  // Block the stop signals in every thread (workers inherit the mask), then wait for them here.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto b = backend::CreateBackend(opts);
  if (!b) {
    std::fprintf(stderr, "vhostlab backend: %s\n", b.error().message.c_str());
    return 1;
  }
  if (Status s = (*b)->Start(); !s.ok()) {
    std::fprintf(stderr, "vhostlab backend: %s\n", s.message().c_str());
    return 1;
  }
  VL_INFO("offering features %s; protocol features %s",
          protocol::FeatureNames(backend::OfferedFeatures(opts.queue_pairs, opts.event_idx,
                                                         opts.mrg_rxbuf)).c_str(),
          protocol::ProtocolFeatureNames(backend::OfferedProtocolFeatures()).c_str());
  if (opts.serve_forever) {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    VL_INFO("%s: stopping", strsignal(sig));
  } else {
    // --once: the control thread ends after the first session; a signal still stops early.
    timespec poll_interval{0, 100 * 1000 * 1000};
    for (;;) {
      if (sigtimedwait(&stop_signals, nullptr, &poll_interval) > 0) break;
      if ((*b)->Stats().connections > 0 && (*b)->WorkerTids().empty()) break;
    }
  }
  (*b)->Stop();

  const backend::BackendStats st = (*b)->Stats();
  std::printf("connections %" PRIu64 "  messages %" PRIu64 "  refused %" PRIu64
              "  iotlb updates %" PRIu64 "  invalidates %" PRIu64 "  misses sent %" PRIu64 "\n",
              st.connections, st.messages, st.message_errors, st.iotlb_updates,
              st.iotlb_invalidates, st.misses_sent);
  if (st.iotlb_refused_full || st.broken_queues || st.memory_faults)
    std::printf("hostile peers: updates refused at the entry cap %" PRIu64 "  queues broken %"
                PRIu64 "  guest-memory faults survived %" PRIu64 "\n",
                st.iotlb_refused_full, st.broken_queues, st.memory_faults);
  if (st.iotlb_updates || st.iotlb_invalidates)
    std::printf("iotlb service (message received to reply sent): update p50 %.1f us p99 %.1f us"
                "  invalidate p50 %.1f us p99 %.1f us\n",
                st.update_service_p50_ns / 1e3, st.update_service_p99_ns / 1e3,
                st.invalidate_service_p50_ns / 1e3, st.invalidate_service_p99_ns / 1e3);
  if (!opts.record_path.empty())
    std::printf("trace %s: %" PRIu64 " records\n", opts.record_path.c_str(), (*b)->RecordedEvents());
  std::printf("%-4s %12s %14s %12s %14s %12s %8s %8s %8s %6s %6s %20s %10s %10s %10s\n", "qp",
              "tx_pkts", "tx_bytes", "rx_pkts", "rx_bytes", "xlates", "misses", "retries",
              "acc_fail", "drops", "errors", "checksum", "kicks", "rx_irqs", "tx_irqs");
  for (const auto& q : st.queues)
    std::printf("%-4u %12" PRIu64 " %14" PRIu64 " %12" PRIu64 " %14" PRIu64 " %12" PRIu64
                " %8" PRIu64 " %8" PRIu64 " %8" PRIu64 " %6" PRIu64 " %6" PRIu64 " %20" PRIu64
                " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
                q.queue_pair, q.tx_packets, q.tx_bytes, q.rx_packets, q.rx_bytes, q.translations,
                q.iotlb_misses, q.retries, q.access_fails, q.drops, q.errors, q.checksum, q.kicks,
                q.rx_interrupts, q.tx_interrupts);
  std::fflush(stdout);
  return 0;
}

const Command kBackend{"backend", "run the vhost-user backend (virtio-net + device IOTLB)",
                       &RunBackend};

}  // namespace
}  // namespace vhostlab::cli
