#!/usr/bin/python3
"""QEMU interop: a real Linux guest behind QEMU's emulated Intel IOMMU drives a vhost-user backend.

One case per invocation:

    tools/qemu/qemu_interop.py --vhostlab build/vhostlab --case strict-256
    tools/qemu/qemu_interop.py --backend dpdk --case lazy-256      # DPDK's vhost PMD as the peer

A run: (1) tools/qemu/prepare_guest.sh supplies a cached kernel + initramfs whose /init is
tools/qemu/init.sh; (2) the backend starts on a Unix socket in a fresh temporary directory;
(3) QEMU (TCG; KVM only if /dev/kvm opens) boots the guest with a virtio-net-pci device behind
intel-iommu (device-iotlb=on, iommu_platform=on, ats=on), so every ring and buffer address the
backend sees is an IOVA and every translation goes through IOTLB MISS/UPDATE/INVALIDATE;
(4) the guest pings a fake neighbour, the backend echoes each frame back, the guest prints its
counters and powers off; (5) the backend is stopped with SIGINT and prints its counters.

What a pass means (vhostlab): the guest ran /init to the end; on every interface tx_packets > 0,
tx_packets == rx_packets (no frame lost) and every ping left the guest; the backend's per-queue
counters agree with the guest's; the guest logged no DMAR fault, virtio error or TX timeout;
QEMU's stderr has no error line (vtd_iova_to_slpte, vhost, failed, error); the backend saw
UPDATE, INVALIDATE and MISS (> 0 each), refused no message and logged no warning or error.
With --backend dpdk only "the guest booted, traffic flowed both ways, no QEMU or guest error" is
asserted: DPDK drops a packet whenever a translation misses, so tx != rx is expected there.

Every run prints one summary line (`qemu_interop: PASS|FAIL case=... frames=...`). A failure
prints the tails of the guest, QEMU and backend logs, keeps the temporary directory and exits 1.
Without qemu-system-x86_64 it prints a SKIP line and exits 77 (ctest's SKIP_RETURN_CODE).
Time: every wait is bounded (--timeout for QEMU, a few seconds for the backend's start and
stop); only the processes this script started are ever signalled.
"""

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = 77
QEMU = "qemu-system-x86_64"


@dataclasses.dataclass(frozen=True)
class Case:
    """One guest configuration. The guest sends pings x flows x rounds echo requests."""

    strict: bool  # iommu.strict=1: unmap = immediate IOTLB invalidation (else lazy flush queue)
    ring: int  # rx_queue_size = tx_queue_size
    queues: int = 1  # queue pairs: netdev queues=N, device mq=on, backend --queues N
    cpus: int = 1  # virtio-net uses min(queue pairs, online CPUs) pairs, so mq needs -smp N
    flows: int = 1  # concurrent ping processes, flow i on CPU i, hence on TX queue i (XPS)
    restart: bool = False  # link down/up + driver unbind/bind (device reset) between two rounds
    pings: int = 20
    interval: float = 0.05
    size: int = 56  # ping payload bytes (8900 with mtu 9000: a frame spans several RX buffers)
    mtu: int = 1500
    backend_args: tuple = ()  # more `vhostlab backend` flags (features turned off)

    @property
    def rounds(self):
        return 2 if self.restart else 1


# mq2 runs strict: strict is the mode with the most IOTLB traffic (MISS/UPDATE/INVALIDATE per
# packet, see notes/qemu-guest-facts.md), so two queue workers translate and invalidate
# concurrently, which is what a multi-queue case is there to exercise.
CASES = {
    "strict-256": Case(strict=True, ring=256),
    "strict-1024": Case(strict=True, ring=1024),
    "lazy-256": Case(strict=False, ring=256),
    "lazy-1024": Case(strict=False, ring=1024),
    "mq2": Case(strict=True, ring=256, queues=2, cpus=2, flows=2),
    "restart": Case(strict=True, ring=256, restart=True),
    # Jumbo frames: Linux negotiates MRG_RXBUF and posts mergeable RX buffers of a page or less,
    # so every 8942-byte frame the backend loops back spans several of them (num_buffers > 1).
    "jumbo": Case(strict=True, ring=256, size=8900, mtu=9000),
    # The same guest with EVENT_IDX and MRG_RXBUF not offered (the older notification and RX
    # paths): both must keep working.
    "no-event-idx-mrg": Case(strict=True, ring=256, backend_args=("--no-event-idx",
                                                                 "--no-mrg-rxbuf")),
}


class CaseFailed(Exception):
    pass


def log(msg):
    print(f"qemu_interop: {msg}", flush=True)


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError as e:
        return f"    ({e})"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty)"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise CaseFailed(f"timed out after {timeout:.0f} s waiting for {what}")


def stop_process(proc, sig, grace):
    """Sends `sig` to `proc` (started by us), waits `grace` s, then kills it. Returns its rc."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def count(pattern, text, flags=re.M):
    return len(re.findall(pattern, text, flags))


# --- backends: one class each, registered in BACKENDS -----------------------------------------


@dataclasses.dataclass
class BackendReport:
    updates: int | None = None  # None: this backend does not report it
    invalidates: int | None = None
    misses: int | None = None
    queue_pairs: list = dataclasses.field(default_factory=list)  # (qp, tx_pkts, rx_pkts)
    problems: list = dataclasses.field(default_factory=list)  # each fails the case
    notes: list = dataclasses.field(default_factory=list)  # printed, never fail


class VhostlabBackend:
    """`vhostlab backend --mode loopback --verbose`: TX queue 2k+1 echoes to RX queue 2k."""

    name = "vhostlab"
    lossless = True  # a TX frame waits for an RX buffer; never dropped

    def __init__(self, args, workdir, case):
        self.binary = Path(args.vhostlab).resolve()
        if not os.access(self.binary, os.X_OK):
            raise CaseFailed(f"no vhostlab binary at {self.binary} (build it, or pass --vhostlab)")
        self.socket = workdir / "vhost.sock"
        self.out = workdir / "backend.out"  # the counter table printed on SIGINT
        self.err = workdir / "backend.log"  # the log (--verbose: every message)
        # Every case records the IOTLB trace and replays it on every design (verified against
        # reference): record and replay are tested on a real guest's traffic.
        self.trace = Path(args.record).resolve() if args.record else workdir / "iotlb.vltrace"
        self.command = [str(self.binary), "backend", "--socket", str(self.socket),
                        "--mode", "loopback", "--queues", str(case.queues), "--iotlb", args.iotlb,
                        "--record", str(self.trace), "--verbose", *case.backend_args]
        self.proc = None

    def start(self):
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err)
        wait_for(lambda: self.socket.exists() or self.proc.poll() is not None, 5,
                 f"{self.socket} to appear")
        if self.proc.poll() is not None:
            raise CaseFailed(f"vhostlab backend exited early with rc {self.proc.returncode}")

    def stop(self):
        if self.proc:
            stop_process(self.proc, signal.SIGINT, 5)

    def logs(self):
        return {"backend log": self.err, "backend counters": self.out}

    def report(self):
        r = BackendReport()
        out = self.out.read_text(errors="replace")
        err = self.err.read_text(errors="replace")
        if self.proc.returncode != 0:
            r.problems.append(f"backend exited with rc {self.proc.returncode}")
        m = re.search(r"connections (\d+)\s+messages (\d+)\s+refused (\d+)\s+iotlb updates (\d+)"
                      r"\s+invalidates (\d+)\s+misses sent (\d+)", out)
        if not m:
            r.problems.append("backend printed no counter summary")
            return r
        connections, messages, refused, r.updates, r.invalidates, r.misses = map(int, m.groups())
        for qp, tx, rx in re.findall(r"^(\d+)\s+(\d+)\s+\d+\s+(\d+)\s+", out, re.M):
            r.queue_pairs.append((int(qp), int(tx), int(rx)))
        if refused:
            r.problems.append(f"backend refused {refused} message(s)")
        for line in err.splitlines():
            if line.startswith(("vhostlab warn:", "vhostlab error:")):
                r.problems.append(f"backend logged: {line}")
        r.notes.append(f"backend: connections {connections} messages {messages} "
                       f"GET_VRING_BASE {count(r'<- GET_VRING_BASE ', err)} "
                       f"SET_VRING_KICK {count(r'<- SET_VRING_KICK ', err)}")
        self.check_trace(r)
        return r

    def check_trace(self, r):
        """The recorded trace replays on every design with every translation verified."""
        try:
            rp = subprocess.run([str(self.binary), "replay", str(self.trace), "--repeat", "1"],
                                capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            r.problems.append("vhostlab replay of the recorded trace took over 120 s")
            return
        if rp.returncode != 0:
            r.problems.append(f"vhostlab replay of {self.trace} failed (rc {rp.returncode}): "
                              + (rp.stdout + rp.stderr).strip()[-2000:])
            return
        first = rp.stdout.splitlines()[:3]
        r.notes.append("trace: " + " / ".join(line.strip() for line in first))


class DpdkBackend:
    """DPDK's vhost PMD under testpmd, io forwarding on one port: echoes, but drops on a miss."""

    name = "dpdk"
    lossless = False

    def __init__(self, args, workdir, case):
        testpmd = shutil.which("dpdk-testpmd")
        if not testpmd:
            raise CaseFailed("--backend dpdk needs dpdk-testpmd (Debian package dpdk)")
        self.socket = workdir / "vhost.sock"
        self.out = workdir / "backend.log"
        q = case.queues
        self.command = [
            testpmd, "--lcores", "0@0,1@0", "--no-huge", "-m", "512", "--no-pci",
            f"--file-prefix=vhostlab-qemu-{os.getpid()}", "--vdev",
            f"net_vhost0,iface={self.socket},iommu-support=1,queues={q}", "--",
            "--stats-period", "1", "--total-num-mbufs=16384", "--forward-mode=io",
            f"--rxq={q}", f"--txq={q}"]
        self.proc = None

    def start(self):
        with open(self.out, "wb") as out:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_for(lambda: self.socket.exists() or self.proc.poll() is not None, 20,
                 f"{self.socket} to appear")
        if self.proc.poll() is not None:
            raise CaseFailed(f"dpdk-testpmd exited early with rc {self.proc.returncode}")

    def stop(self):
        if self.proc:
            stop_process(self.proc, signal.SIGINT, 10)

    def logs(self):
        return {"dpdk-testpmd": self.out}

    def report(self):
        r = BackendReport()
        text = self.out.read_text(errors="replace")
        # On exit testpmd prints one block per stream (queue) when there are several, then the
        # port's totals. Its RX is the guest's TX and the other way round.
        final = text.rsplit("Telling cores to stop", 1)[-1]
        streams = re.findall(r"Forward Stats for RX Port= *0/Queue= *(\d+) .*?\n"
                             r"\s*RX-packets: *(\d+)\s+TX-packets: *(\d+)", final)
        total = re.findall(r"Forward statistics for port 0 .*?\n\s*RX-packets: *(\d+).*?\n"
                           r"\s*TX-packets: *(\d+)", final)
        if streams:
            r.queue_pairs = [(int(q), int(rx), int(tx)) for q, rx, tx in streams]
        elif total:
            r.queue_pairs = [(0, int(total[-1][0]), int(total[-1][1]))]
        else:
            r.problems.append("dpdk-testpmd printed no forward statistics")
        return r


BACKENDS = {b.name: b for b in (VhostlabBackend, DpdkBackend)}

# --- guest and QEMU ---------------------------------------------------------------------------


def prepare_guest(args):
    if args.kernel and args.initrd:
        return Path(args.kernel), Path(args.initrd)
    cmd = ["bash", str(HERE / "prepare_guest.sh")]
    if args.guest_cache:
        cmd.append(args.guest_cache)
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=900)
    if res.returncode != 0:
        raise CaseFailed(f"prepare_guest.sh failed (rc {res.returncode}):\n{res.stderr}")
    env = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    return Path(env["VL_GUEST_KERNEL"]), Path(env["VL_GUEST_INITRD"])


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def guest_cmdline(case):
    parts = ["console=ttyS0", "intel_iommu=on", "iommu=nopt", "ipv6.disable=1", "panic=-1"]
    if case.strict:
        parts.append("iommu.strict=1")
    parts += [f"vl.pings={case.pings}", f"vl.interval={case.interval}", f"vl.flows={case.flows}",
              f"vl.restart={int(case.restart)}", f"vl.size={case.size}", f"vl.mtu={case.mtu}"]
    return " ".join(parts)


def qemu_command(case, kernel, initrd, socket, workdir):
    q = case.queues
    device = ["virtio-net-pci", "netdev=net0", "iommu_platform=on", "ats=on", "disable-legacy=on",
              # MSI-X makes QEMU 7.2 under TCG segfault when the driver starts; INTx does not.
              "vectors=0", f"rx_queue_size={case.ring}", f"tx_queue_size={case.ring}"]
    if q > 1:
        device.append("mq=on")
    return [
        QEMU, "-nodefaults", "-machine", "q35,kernel-irqchip=split,memory-backend=mem",
        "-accel", "kvm" if kvm_usable() else "tcg", "-cpu", "max", "-smp", str(case.cpus),
        "-m", "512M", "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
        "-device", "intel-iommu,intremap=on,device-iotlb=on",
        "-chardev", f"socket,id=c0,path={socket}",
        "-netdev", f"vhost-user,id=net0,chardev=c0,queues={q}",
        "-device", ",".join(device),
        "-display", "none", "-serial", f"file:{workdir / 'guest.log'}", "-no-reboot",
        "-kernel", str(kernel), "-initrd", str(initrd), "-append", guest_cmdline(case),
        "-D", str(workdir / "qemu-trace.log"),
        "-trace", "vhost_iotlb_miss", "-trace", "vhost_dev_start", "-trace", "vhost_dev_stop",
        "-trace", "vhost_user_write",
    ]


@dataclasses.dataclass
class QemuView:
    """What QEMU's trace says it did, whichever the backend (-trace, written by -D)."""

    iotlb_msgs: int  # IOTLB_MSGs written to the backend: UPDATEs + INVALIDATEs
    # vhost_device_iotlb_miss calls: the backend's MISSes, plus the used ring of each ring that
    # QEMU pushes itself, through the same function, when a vhost start succeeds.
    miss_calls: int
    starts: int  # vhost_dev_start attempts: one per queue pair per driver start

    @classmethod
    def parse(cls, trace):
        return cls(iotlb_msgs=count(r"^vhost_user_write req:22 ", trace),
                   miss_calls=count(r"^vhost_iotlb_miss .* step 1$", trace),
                   starts=count(r"^vhost_dev_start ", trace))


# Kernel console lines (they start with "[ timestamp]") that mean the device misbehaved.
GUEST_FAULT = re.compile(
    r"^\[[ \d.]+\] .*(DMAR: \[DMA|DMAR: DRHD: handling fault|DMAR:.*fault|"
    r"virtio.*(error|fail(ed|ure)|bad |not a head|unexpected|broken|corrupt)|"
    r"NETDEV WATCHDOG|transmit queue \d+ timed out|Kernel panic|BUG:|Call Trace)", re.I)


@dataclasses.dataclass
class GuestReport:
    results: dict  # iface -> {tx_packets, rx_packets, tx_bytes, rx_bytes, rounds}
    rounds: list  # the VLROUND lines, parsed
    info: list
    problems: list


def parse_kv(line):
    return {k: (int(v) if v.isdigit() else v) for k, v in re.findall(r"(\w+)=(\S+)", line)}


def read_guest(path, case):
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    g = GuestReport({}, [], [], [])
    for line in lines:
        if line.startswith("VLRESULT "):
            kv = parse_kv(line)
            g.results[kv.pop("iface")] = kv
        elif line.startswith("VLROUND "):
            g.rounds.append(parse_kv(line))
        elif line.startswith("VLINFO "):
            g.info.append(line[len("VLINFO "):])
        elif line.startswith("VLERROR "):
            g.problems.append(f"guest: {line}")
    if "VLDONE" not in lines:
        g.problems.append("guest did not run /init to the end (no VLDONE line)")
    faults = sorted({re.sub(r"^\[[ \d.]+\] ", "", l) for l in lines if GUEST_FAULT.search(l)})
    g.problems += [f"guest kernel: {f}" for f in faults]
    want = "iommu_type=DMA " if case.strict else "iommu_type=DMA-FQ "
    for info in g.info:
        if "iommu_type=" in info and want not in info + " ":
            g.problems.append(f"guest IOMMU domain is not {want.split('=')[1]}: {info}")
    return g


def check(case, backend, guest, report, qemu_rc, qemu_err, qemu):
    problems = list(guest.problems) + list(report.problems)
    if qemu_rc != 0:
        problems.append(f"QEMU exited with rc {qemu_rc}")
    # Traces go to their own file (-D), so QEMU's stderr is empty in a good run: every line there
    # (vtd_iova_to_slpte permission errors, vhost failures, "Unexpected IOTLB message") counts.
    problems += [f"QEMU stderr: {l}" for l in qemu_err.splitlines() if l.strip()]
    if not guest.results:
        problems.append("guest printed no VLRESULT line")
    expected = case.pings * case.flows * case.rounds
    for r in guest.rounds if backend.lossless else []:
        if r.get("settled") != 1:
            problems.append(f"round {r['round']} on {r['iface']}: tx != rx 3 s after the last "
                            f"ping (tx {r['tx_packets']}, rx {r['rx_packets']}): stalled?")
    for ifc, r in guest.results.items():
        if r["tx_packets"] <= 0 or r["rx_packets"] <= 0:
            problems.append(f"{ifc}: no traffic (tx {r['tx_packets']}, rx {r['rx_packets']})")
        elif backend.lossless:
            if r["tx_packets"] != r["rx_packets"]:
                problems.append(f"{ifc}: frames lost: guest tx {r['tx_packets']} "
                                f"!= rx {r['rx_packets']}")
            if r["tx_packets"] < expected:
                problems.append(f"{ifc}: only {r['tx_packets']} of {expected} pings left the guest")
    if backend.lossless and guest.results and report.queue_pairs:
        guest_tx = sum(r["tx_packets"] for r in guest.results.values())
        guest_rx = sum(r["rx_packets"] for r in guest.results.values())
        backend_tx = sum(tx for _, tx, _ in report.queue_pairs)
        backend_rx = sum(rx for _, _, rx in report.queue_pairs)
        if (backend_tx, backend_rx) != (guest_tx, guest_rx):
            problems.append(f"backend counted tx {backend_tx} rx {backend_rx}, the guest "
                            f"tx {guest_tx} rx {guest_rx}")
    for name in ("updates", "invalidates", "misses"):
        n = getattr(report, name)
        if n is not None and n <= 0:
            problems.append(f"backend saw no IOTLB {name}")
    if None not in (report.updates, report.invalidates):
        if report.updates + report.invalidates != qemu.iotlb_msgs:
            problems.append(f"QEMU sent {qemu.iotlb_msgs} IOTLB_MSGs, the backend counted "
                            f"{report.updates} UPDATEs + {report.invalidates} INVALIDATEs")
    if case.restart and qemu.starts < 2 * case.queues:
        problems.append(f"restart: QEMU started vhost {qemu.starts} times, expected "
                        f"{2 * case.queues} (2 per queue pair)")
    return problems


def run_case(args, name, case, workdir):
    kernel, initrd = prepare_guest(args)
    backend = BACKENDS[args.backend](args, workdir, case)
    qemu_cmd = qemu_command(case, kernel, initrd, backend.socket, workdir)
    (workdir / "qemu.cmd").write_text(" ".join(qemu_cmd) + "\n")
    if args.verbose:
        log("backend: " + " ".join(backend.command))
        log("qemu: " + " ".join(qemu_cmd))
    logs = {"guest console": workdir / "guest.log", "QEMU stderr": workdir / "qemu.err",
            "QEMU trace": workdir / "qemu-trace.log", **backend.logs()}
    t0 = time.monotonic()
    qemu = None
    hung = []
    try:
        backend.start()
        with open(workdir / "qemu.err", "wb") as err:
            qemu = subprocess.Popen(qemu_cmd, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
        try:
            qemu.wait(args.timeout)
        except subprocess.TimeoutExpired:
            # Still read what the guest and the backend got to: it says where it hung.
            hung.append(f"QEMU did not finish within {args.timeout:.0f} s (guest hung?)")
    except CaseFailed as e:
        return [str(e)], None, None, logs, time.monotonic() - t0, None
    finally:
        if qemu:
            stop_process(qemu, signal.SIGTERM, 3)
        backend.stop()
    elapsed = time.monotonic() - t0
    guest = read_guest(workdir / "guest.log", case)
    report = backend.report()
    view = QemuView.parse((workdir / "qemu-trace.log").read_text(errors="replace"))
    problems = hung + check(case, backend, guest, report, qemu.returncode,
                            (workdir / "qemu.err").read_text(errors="replace"), view)
    report.notes.append(f"qemu: IOTLB_MSGs sent {view.iotlb_msgs}, IOTLB miss calls "
                        f"{view.miss_calls} (MISSes + ring pushes), vhost starts {view.starts}")
    return problems, guest, report, logs, elapsed, view


def summary(status, name, args, elapsed, guest, report, view):
    parts = [f"{status} case={name} backend={args.backend}"]
    if elapsed is not None:
        parts.append(f"time={elapsed:.1f}s")
    if guest and guest.results:
        parts.append("frames=" + ",".join(
            f"{ifc}:tx{r['tx_packets']}/rx{r['rx_packets']}" for ifc, r in guest.results.items()))
    if report:
        parts += [f"{k}={'n/a' if v is None else v}" for k, v in (
            ("MISS", report.misses), ("UPDATE", report.updates),
            ("INVALIDATE", report.invalidates))]
    if view:
        parts.append(f"qemu_iotlb_msgs={view.iotlb_msgs} qemu_miss_calls={view.miss_calls}")
    if report and report.queue_pairs:
        parts.append("qp=" + ",".join(f"{qp}:tx{tx}/rx{rx}" for qp, tx, rx in report.queue_pairs))
    return " ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="cases:\n" + "\n".join(
                                     f"  {n:12} {c}" for n, c in CASES.items()))
    ap.add_argument("--case", choices=CASES, help="the case to run")
    ap.add_argument("--backend", choices=BACKENDS, default="vhostlab")
    ap.add_argument("--vhostlab", default="build/vhostlab", help="the vhostlab CLI binary")
    ap.add_argument("--kernel", help="guest kernel (with --initrd: skip prepare_guest.sh)")
    ap.add_argument("--initrd", help="guest initramfs")
    ap.add_argument("--guest-cache", help="prepare_guest.sh's cache directory")
    ap.add_argument("--timeout", type=float, default=45, help="seconds QEMU may run [45]")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--iotlb", default="hash", help="vhostlab's IOTLB design [hash]")
    ap.add_argument("--record", help="vhostlab: keep the recorded IOTLB trace at this path "
                    "(every case records one in its temporary directory and replays it)")
    ap.add_argument("--prepare-only", action="store_true",
                    help="only prepare the guest (ctest's fixture)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the command lines")
    args = ap.parse_args()

    if not shutil.which(QEMU):
        log(f"SKIP: {QEMU} is not installed (apt-get install qemu-system-x86)")
        return SKIP
    if args.prepare_only:
        t0 = time.monotonic()
        try:
            kernel, initrd = prepare_guest(args)
        except CaseFailed as e:
            log(f"FAIL prepare: {e}")
            return 1
        log(f"guest ready in {time.monotonic() - t0:.1f} s: {kernel} {initrd}")
        return 0
    if not args.case:
        ap.error("--case is required")

    name = args.case
    workdir = Path(tempfile.mkdtemp(prefix=f"vhostlab-qemu-{name}-"))
    try:
        problems, guest, report, logs, elapsed, view = run_case(args, name, CASES[name], workdir)
    except CaseFailed as e:
        problems, guest, report, logs, elapsed, view = [str(e)], None, None, {}, None, None
    if guest:
        for info in guest.info:
            log(f"guest: {info}")
    if report:
        for note in report.notes:
            log(note)
    if problems:
        problems = list(dict.fromkeys(problems))  # a repeated log line once
        for what, path in logs.items():
            print(f"--- {what} ({path}), last lines:\n{tail(path)}", flush=True)
        for p in problems:
            log(f"problem: {p}")
        log(summary("FAIL", name, args, elapsed, guest, report, view))
        log(f"kept {workdir}")
        return 1
    log(summary("PASS", name, args, elapsed, guest, report, view))
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
