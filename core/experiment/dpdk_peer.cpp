#include "core/experiment/dpdk_peer.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace vhostlab::experiment {
namespace {

bool IsSocket(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

}  // namespace

std::string FindOnPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string full = (dir.empty() ? "." : dir) + "/" + name;
    if (access(full.c_str(), X_OK) == 0) return full;
  }
  return "";
}

Result<std::unique_ptr<DpdkPeer>> DpdkPeer::Start(const DpdkOptions& o) {
  std::string binary = FindOnPath(o.binary);
  if (binary.empty())
    return Error{"'" + o.binary +
                 "' not found on PATH: install DPDK (tools/setup.sh installs "
                 "the Debian dpdk package) or pass another backend"};
  std::string lcores = "0@" + std::to_string(o.cpu) + ",1@" + std::to_string(o.cpu);
  std::string vdev = "net_vhost0,iface=" + o.socket_path + ",queues=" + std::to_string(o.queues) +
                     ",iommu-support=1";
  std::string q = std::to_string(o.queues);
  std::vector<std::string> args = {binary,
                                   "-v",
                                   "--lcores",
                                   lcores,
                                   "--no-huge",
                                   "-m",
                                   "512",
                                   "--no-pci",
                                   "--file-prefix=" + o.file_prefix,
                                   "--vdev",
                                   vdev,
                                   "--",
                                   "--stats-period",
                                   "1",
                                   "--total-num-mbufs=16384",
                                   "--forward-mode=io",
                                   "--nb-cores=1",
                                   "--rxq=" + q,
                                   "--txq=" + q};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int log = open(o.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) return Error{"open " + o.log_path + ": " + std::strerror(errno)};
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(log);
    return Error{std::string("fork: ") + std::strerror(errno)};
  }
  if (pid == 0) {
    // testpmd busy-polls a core: if this process dies (a crashed test), it must not outlive it.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(log, 1);
    dup2(log, 2);
    execv(argv[0], argv.data());
    dprintf(2, "exec %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  close(log);
  std::unique_ptr<DpdkPeer> peer(new DpdkPeer());
  peer->options_ = o;
  peer->pid_ = pid;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(o.start_timeout_ms);
  while (!IsSocket(o.socket_path)) {
    if (!peer->Running())
      return Error{"dpdk-testpmd exited before creating its socket; its output ends with:\n" +
                   peer->LogTail()};
    if (std::chrono::steady_clock::now() > deadline) {
      std::string tail = peer->LogTail();
      peer->Stop();
      return Error{"dpdk-testpmd did not create " + o.socket_path + " within " +
                   std::to_string(o.start_timeout_ms) + " ms; its output ends with:\n" + tail};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return peer;
}

bool DpdkPeer::Running() {
  if (pid_ <= 0) return false;
  int status;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

void DpdkPeer::Stop() {
  if (!Running()) return;
  kill(pid_, SIGINT);
  for (int i = 0; i < 100 && Running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    int status;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }
  std::error_code ec;
  std::filesystem::remove(options_.socket_path, ec);
  // EAL's runtime directory for this prefix (config, fbarray files).
  std::filesystem::remove_all("/var/run/dpdk/" + options_.file_prefix, ec);
}

std::string DpdkPeer::LogTail(std::size_t bytes) const {
  std::ifstream in(options_.log_path, std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return all.size() > bytes ? all.substr(all.size() - bytes) : all;
}

std::string DpdkPeer::Version() const {
  std::ifstream in(options_.log_path);
  std::string line;
  while (std::getline(in, line)) {
    auto p = line.find("RTE Version: '");
    if (p != std::string::npos) {
      auto q = line.find('\'', p + 14);
      return line.substr(p + 14, q == std::string::npos ? std::string::npos : q - p - 14);
    }
  }
  return "";
}

}  // namespace vhostlab::experiment
