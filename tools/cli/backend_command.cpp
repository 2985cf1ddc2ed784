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
#include "core/protocol/messages.hpp"
#include "core/topology/cpuset.hpp"
#include "tools/cli/command.hpp"
#include "tools/cli/flags.hpp"

namespace vhostlab::cli {
namespace {

void Help(FILE* out) {
  std::fprintf(out,
      "usage: vhostlab backend --socket PATH [--client] [--iotlb DESIGN] [--mode loopback|sink]\n"
      "                        [--queues N] [--poll busy|adaptive[:US]|interrupt] [--once]\n"
      "                        [--record FILE [--record-limit N]]\n"
      "                        [--iotlb-max-entries N] [--peer-timeout-ms MS]\n"
      "                        [--no-event-idx] [--no-mrg-rxbuf] [--cpus LIST]\n"
      "                        [--verbose|--quiet]\n"
      "\n"
      "Runs vhostlab's vhost-user backend (the spec's \"slave\"): a virtio-net device over split\n"
      "rings with a device IOTLB (VHOST_USER_IOTLB_MSG), one worker thread per queue pair.\n"
      "It serves one front-end at a time and, when that front-end disconnects, resets all state\n"
      "and waits for the next one. SIGINT or SIGTERM stops it and prints per-queue counters.\n"
      "\n"
      "options:\n"
      "  --socket PATH   Unix socket path (required). Listened on, or connected to with --client.\n"
      "  --client        connect to a front-end that listens on PATH (QEMU 'server=on',\n"
      "                  DPDK virtio-user 'server=1') instead of listening; reconnects after a\n"
      "                  disconnect.\n"
      "  --iotlb DESIGN  IOTLB design the queue workers translate through (default hash,\n"
      "                  the fastest measured; `vhostlab designs` says what each is for).\n"
      "                  Available: %s.\n"
      "  --mode MODE     loopback (default): what the guest transmits on TX queue 2k+1 comes back\n"
      "                  byte for byte on RX queue 2k of the same pair (like testpmd io forwarding\n"
      "                  on one port); a TX packet waits for an RX buffer, it is never dropped.\n"
      "                  sink: TX only; every packet is read (through the IOTLB) and checksummed.\n"
      "  --queues N      queue pairs offered (GET_QUEUE_NUM answers N; MQ); default 1, max 64.\n"
      "  --cpus LIST     pin worker p to the p-th CPU of LIST (wrapping): a plain list such as\n"
      "                  2,3 keeps its order; hwloc ranges (2-5,8) and masks (0xf) are sorted.\n"
      "                  Default: workers are not pinned.\n"
      "  --poll MODE     how workers wait for work (default adaptive:30):\n"
      "                    adaptive[:US]  keep polling the rings (and the control thread its\n"
      "                                   socket) for US microseconds after the last work, with\n"
      "                                   guest kicks suppressed (VRING_USED_F_NO_NOTIFY), then\n"
      "                                   sleep until a kick;\n"
      "                    busy           workers never sleep (a core each, like DPDK's PMD);\n"
      "                    interrupt      sleep as soon as a pass finds nothing (every kick and\n"
      "                                   every message wakes a thread).\n"
      "  --once          exit after the first front-end disconnects instead of waiting for more.\n"
      "  --record FILE   record an IOTLB trace: every UPDATE/INVALIDATE/MISS with timestamps, the\n"
      "                  memory table, and every translation the datapath asked for (iova, length,\n"
      "                  permission, queue, outcome). Written when the backend stops. Replay it\n"
      "                  with `vhostlab replay FILE`; read it with vhostlab.load_trace(FILE).\n"
      "  --record-limit N  stop recording after N records (40 bytes each; default 10000000);\n"
      "                  the file then says it is truncated.\n"
      "  --iotlb-max-entries N  live IOTLB entries one front-end may hold (default 262144);\n"
      "                  an UPDATE past it is refused with a non-zero reply and counted, so a\n"
      "                  front-end cannot make the backend grow without bound.\n"
      "  --peer-timeout-ms MS  drop a front-end that half-sends a message or stops reading\n"
      "                  replies for MS milliseconds (default 3000), so the next one is served.\n"
      "  --no-event-idx  do not offer VIRTIO_RING_F_EVENT_IDX (offered by default: kicks and\n"
      "                  interrupts are then suppressed through avail_event/used_event).\n"
      "  --no-mrg-rxbuf  do not offer VIRTIO_NET_F_MRG_RXBUF (offered by default: a frame larger\n"
      "                  than one RX buffer then spans several; without it, it is dropped).\n"
      "  --verbose       log every message (debug level); --quiet logs errors only.\n"
      "\n"
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
      "      -device virtio-net-pci,netdev=n0,iommu_platform=on,ats=on  (+ -device intel-iommu)\n",
      DesignNamesJoined().c_str());
}

int RunBackend(int argc, char** argv) {
  backend::BackendOptions opts;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vhostlab backend: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--help" || a == "-h") {
      Help(stdout);
      return 0;
    } else if (a == "--socket") {
      opts.socket_path = value("--socket");
    } else if (a == "--client") {
      opts.client = true;
    } else if (a == "--iotlb") {
      opts.iotlb = value("--iotlb");
    } else if (a == "--mode") {
      const std::string m = value("--mode");
      if (m == "loopback") {
        opts.mode = backend::DeviceMode::kLoopback;
      } else if (m == "sink") {
        opts.mode = backend::DeviceMode::kSink;
      } else {
        std::fprintf(stderr, "vhostlab backend: --mode must be loopback or sink, not '%s'\n",
                     m.c_str());
        return 2;
      }
    } else if (a == "--queues") {
      char* end = nullptr;
      const char* v = value("--queues");
      const unsigned long n = std::strtoul(v, &end, 10);
      if (!*v || *end || n == 0 || n > 64) {
        std::fprintf(stderr, "vhostlab backend: --queues must be 1..64, not '%s'\n", v);
        return 2;
      }
      opts.queue_pairs = static_cast<uint32_t>(n);
    } else if (a == "--cpus") {
      // Worker p on the p-th CPU (wrapping): a plain list keeps its order, ranges are hwloc's.
      auto cpus = topology::ParseCpuList(value("--cpus"));
      Status st = cpus.ok() ? topology::CheckCpusAllowed(*cpus, topology::AllowedCpus(), "--cpus")
                            : Status(Error{"--cpus: " + cpus.error().message});
      if (!st.ok()) {
        std::fprintf(stderr, "vhostlab backend: %s\n", st.message().c_str());
        return 2;
      }
      opts.worker_cpus = *cpus;
    } else if (a == "--poll") {
      const std::string v = value("--poll");
      if (Status st = backend::ParsePollMode(v, &opts.poll, &opts.spin_us); !st.ok()) {
        std::fprintf(stderr, "vhostlab backend: %s\n", st.message().c_str());
        return 2;
      }
    } else if (a == "--record") {
      opts.record_path = value("--record");
    } else if (a == "--record-limit") {
      const char* v = value("--record-limit");
      uint64_t n = 0;
      if (!ParseU64(v, &n) || n == 0) {
        std::fprintf(stderr, "vhostlab backend: --record-limit must be a positive count, not '%s'\n", v);
        return 2;
      }
      opts.record_limit = n;
    } else if (a == "--iotlb-max-entries") {
      const char* v = value("--iotlb-max-entries");
      uint64_t n = 0;
      if (!ParseU64(v, &n) || n == 0 || n > (uint64_t{1} << 32)) {
        std::fprintf(stderr, "vhostlab backend: --iotlb-max-entries must be 1..4294967296, not "
                     "'%s'\n", v);
        return 2;
      }
      opts.iotlb_max_entries = n;
    } else if (a == "--peer-timeout-ms") {
      const char* v = value("--peer-timeout-ms");
      uint64_t n = 0;
      if (!ParseU64(v, &n) || n < 10 || n > 3'600'000) {
        std::fprintf(stderr, "vhostlab backend: --peer-timeout-ms must be 10..3600000, not '%s'\n",
                     v);
        return 2;
      }
      opts.peer_timeout_ms = static_cast<int>(n);
    } else if (a == "--no-event-idx") {
      opts.event_idx = false;
    } else if (a == "--no-mrg-rxbuf") {
      opts.mrg_rxbuf = false;
    } else if (a == "--once") {
      opts.serve_forever = false;
    } else if (a == "--verbose" || a == "-v") {
      LogThreshold() = LogLevel::kDebug;
    } else if (a == "--quiet" || a == "-q") {
      LogThreshold() = LogLevel::kError;
    } else {
      std::fprintf(stderr, "vhostlab backend: unknown argument '%s' (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (opts.socket_path.empty()) {
    std::fprintf(stderr, "vhostlab backend: --socket PATH is required (see --help)\n");
    return 2;
  }
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
