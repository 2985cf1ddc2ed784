// Interop with a real peer: DPDK's virtio-user front-end (dpdk-testpmd) drives
// `vhostlab backend` (the real CLI process) over a Unix socket.
//
//  - sink + testpmd txonly: packets testpmd transmits arrive in the backend (tx counter > 0, no
//    drops, no errors, never more than testpmd says it sent).
//  - loopback + testpmd io --tx-first: the burst testpmd sends first comes back on its RX queue
//    and is forwarded again, so both directions carry packets.
// DPDK virtio-user never negotiates IOMMU_PLATFORM, so this is the non-IOMMU path (GPA
// descriptors, uaddr rings). Every wait is bounded; the test is skipped, loudly, only when DPDK
// itself cannot start here (no dpdk-testpmd, or EAL initialisation fails).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/backend/test_frontend.hpp"

namespace vhostlab::backend {
namespace {

using testing::TempDir;
using testing::WaitFor;

// A child process we started, with stdout+stderr in a file; killed if still running at the end.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& out_path) : out_path_(out_path) {
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (Running()) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool Running() {
    if (exited_) return false;
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      status_ = status;
    }
    return !exited_;
  }
  // Sends `sig` and waits (bounded) for the exit; SIGKILL after the bound.
  int Stop(int sig, int timeout_ms = 20000) {
    if (Running()) ::kill(pid_, sig);
    if (!WaitFor([&] { return !Running(); }, timeout_ms)) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
    }
    return status_;
  }
  std::string Output() const {
    std::ifstream f(out_path_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::string out_path_;
  bool exited_ = false;
  int status_ = -1;
};

bool HaveTestpmd() { return std::system("command -v dpdk-testpmd >/dev/null 2>&1") == 0; }

// The last value of `label` (e.g. "TX-packets:") in testpmd's output; -1 when absent.
int64_t LastCounter(const std::string& out, const std::string& label) {
  std::regex re(label + R"(\s+(\d+))");
  int64_t last = -1;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
    last = std::stoll((*it)[1]);
  return last;
}

struct InteropRun {
  std::string backend_out, testpmd_out;
  std::map<std::string, uint64_t> row;  // queue pair 0
  std::vector<std::map<std::string, uint64_t>> rows;
  bool skipped = false;
  std::string skip_reason;
};

struct Peers {
  const char* mode;                       // backend --mode
  std::vector<std::string> forward;       // testpmd forwarding arguments
  const char* label;                      // testpmd counter that must become > 0
  uint32_t queues = 1;                    // queue pairs on both sides
  bool backend_client = false;            // backend --client, virtio-user server=1
};

// Parses every queue pair's row of the backend's counter table.
std::vector<std::map<std::string, uint64_t>> BackendRows(const std::string& out, uint32_t n) {
  std::vector<std::map<std::string, uint64_t>> rows(n);
  std::istringstream in(out);
  std::string line;
  std::vector<std::string> header;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::vector<std::string> cols;
    for (std::string c; ls >> c;) cols.push_back(c);
    if (!cols.empty() && cols[0] == "qp") {
      header = cols;
    } else if (!header.empty() && cols.size() == header.size()) {
      const uint32_t qp = static_cast<uint32_t>(std::stoul(cols[0]));
      if (qp < n)
        for (std::size_t i = 1; i < cols.size(); ++i) rows[qp][header[i]] = std::stoull(cols[i]);
    }
  }
  return rows;
}

// Runs the backend CLI + testpmd until testpmd reports `label` > 0 (bounded), then stops both.
InteropRun RunPair(const Peers& p) {
  InteropRun r;
  const std::string dir = TempDir();
  const std::string sock = dir + "/vhostlab.sock";
  const std::string q = std::to_string(p.queues);
  std::vector<std::string> backend_argv = {VHOSTLAB_CLI, "backend", "--socket", sock, "--mode",
                                           p.mode, "--queues", q};
  if (p.backend_client) backend_argv.push_back("--client");
  std::vector<std::string> argv = {
      "dpdk-testpmd", "--lcores", "0@0,1@0", "--no-huge", "-m", "512", "--no-pci",
      "--file-prefix=vlbe" + std::to_string(::getpid()) + p.mode + q + (p.backend_client ? "c" : ""),
      "--vdev",
      "net_virtio_user0,path=" + sock + ",queues=" + q + (p.backend_client ? ",server=1" : ""),
      "--", "--stats-period", "1", "--total-num-mbufs=16384", "--txq=" + q, "--rxq=" + q};
  argv.insert(argv.end(), p.forward.begin(), p.forward.end());
  struct stat st;
  std::unique_ptr<Child> backend, testpmd;
  if (!p.backend_client) {
    backend = std::make_unique<Child>(backend_argv, dir + "/backend.out");
    EXPECT_TRUE(WaitFor([&] { return ::stat(sock.c_str(), &st) == 0 || !backend->Running(); }))
        << "backend socket never appeared";
    if (!backend->Running()) {
      ADD_FAILURE() << "backend exited: " << backend->Output();
      return r;
    }
    testpmd = std::make_unique<Child>(argv, dir + "/testpmd.out");
  } else {
    testpmd = std::make_unique<Child>(argv, dir + "/testpmd.out");
    WaitFor([&] { return ::stat(sock.c_str(), &st) == 0 || !testpmd->Running(); }, 30000);
    backend = std::make_unique<Child>(backend_argv, dir + "/backend.out");
  }
  WaitFor([&] { return !testpmd->Running() || LastCounter(testpmd->Output(), p.label) > 0; },
          60000);
  const bool ran = testpmd->Running();
  testpmd->Stop(SIGINT);
  r.testpmd_out = testpmd->Output();
  if (!ran && r.testpmd_out.find("Cannot init EAL") != std::string::npos) {
    r.skipped = true;
    r.skip_reason = "DPDK EAL cannot start on this machine:\n" + r.testpmd_out;
  }
  backend->Stop(SIGINT);
  r.backend_out = backend->Output();
  r.rows = BackendRows(r.backend_out, p.queues);
  r.row = r.rows[0];
  for (const char* f : {"/backend.out", "/testpmd.out"}) ::unlink((dir + f).c_str());
  ::rmdir(dir.c_str());
  return r;
}

TEST(DpdkVirtioUserTest, TxonlyPacketsArriveInSinkMode) {
  if (!HaveTestpmd()) GTEST_SKIP() << "*** SKIPPED: dpdk-testpmd is not installed (tools/setup.sh installs dpdk) ***";
  InteropRun r = RunPair({"sink", {"--forward-mode=txonly"}, "TX-packets:"});
  if (r.skipped) GTEST_SKIP() << "*** SKIPPED: " << r.skip_reason;
  ASSERT_FALSE(r.row.empty()) << "no counter table from the backend:\n" << r.backend_out;
  const int64_t sent = LastCounter(r.testpmd_out, "TX-packets:");
  EXPECT_GT(r.row["tx_pkts"], 0u) << r.backend_out << "\n---- testpmd:\n" << r.testpmd_out;
  EXPECT_GT(r.row["checksum"], 0u) << "payload bytes were read";
  EXPECT_LE(static_cast<int64_t>(r.row["tx_pkts"]), sent) << "never more than testpmd sent";
  EXPECT_EQ(r.row["drops"], 0u);
  EXPECT_EQ(r.row["errors"], 0u);
  std::printf("testpmd sent %lld packets; vhostlab backend (sink) consumed %llu\n",
              static_cast<long long>(sent), static_cast<unsigned long long>(r.row["tx_pkts"]));
  EXPECT_NE(r.backend_out.find("negotiated features"), std::string::npos)
      << "negotiated features are logged by name";
}

TEST(DpdkVirtioUserTest, IoForwardingBouncesThroughLoopback) {
  if (!HaveTestpmd()) GTEST_SKIP() << "*** SKIPPED: dpdk-testpmd is not installed (tools/setup.sh installs dpdk) ***";
  InteropRun r = RunPair({"loopback", {"--forward-mode=io", "--tx-first"}, "RX-packets:"});
  if (r.skipped) GTEST_SKIP() << "*** SKIPPED: " << r.skip_reason;
  ASSERT_FALSE(r.row.empty()) << "no counter table from the backend:\n" << r.backend_out;
  EXPECT_GT(r.row["rx_pkts"], 0u) << r.backend_out << "\n---- testpmd:\n" << r.testpmd_out;
  EXPECT_GT(LastCounter(r.testpmd_out, "RX-packets:"), 0) << "testpmd received the packets back";
  std::printf("testpmd received %lld packets; vhostlab backend (loopback) forwarded %llu\n",
              static_cast<long long>(LastCounter(r.testpmd_out, "RX-packets:")),
              static_cast<unsigned long long>(r.row["rx_pkts"]));
  EXPECT_EQ(r.row["drops"], 0u);
  EXPECT_EQ(r.row["errors"], 0u);
}

TEST(DpdkVirtioUserTest, TwoQueuePairsBothCarryTraffic) {
  if (!HaveTestpmd()) GTEST_SKIP() << "*** SKIPPED: dpdk-testpmd is not installed (tools/setup.sh installs dpdk) ***";
  InteropRun r = RunPair({"sink", {"--forward-mode=txonly"}, "TX-packets:", 2});
  if (r.skipped) GTEST_SKIP() << "*** SKIPPED: " << r.skip_reason;
  ASSERT_EQ(r.rows.size(), 2u);
  for (uint32_t qp = 0; qp < 2; ++qp) {
    EXPECT_GT(r.rows[qp]["tx_pkts"], 0u) << "queue pair " << qp << "\n" << r.backend_out;
    EXPECT_EQ(r.rows[qp]["errors"], 0u);
  }
  EXPECT_NE(r.backend_out.find("NET_MQ"), std::string::npos) << r.backend_out;
}

TEST(DpdkVirtioUserTest, BackendInClientModeConnectsToVirtioUserServer) {
  if (!HaveTestpmd()) GTEST_SKIP() << "*** SKIPPED: dpdk-testpmd is not installed (tools/setup.sh installs dpdk) ***";
  Peers p{"sink", {"--forward-mode=txonly"}, "TX-packets:"};
  p.backend_client = true;
  InteropRun r = RunPair(p);
  if (r.skipped) GTEST_SKIP() << "*** SKIPPED: " << r.skip_reason;
  EXPECT_GT(r.row["tx_pkts"], 0u) << r.backend_out << "\n---- testpmd:\n" << r.testpmd_out;
  EXPECT_EQ(r.row["errors"], 0u);
}

}  // namespace
}  // namespace vhostlab::backend
