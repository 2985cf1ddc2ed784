// The virtio-net device of one queue pair: what a burst does with the chains the translator
// walks. Queue 2k is RX (the device writes frames into it), 2k+1 is TX (the driver's frames).
//
// Loopback: every TX frame is copied into RX chains byte for byte, with a virtio-net header that
// is all zero but for num_buffers (no offloads are negotiated). A TX packet is forwarded only
// once RX chains large enough for it are available; otherwise the TX chain stays available
// (back-pressure, never a drop). With VIRTIO_NET_F_MRG_RXBUF a frame larger than one RX chain
// continues in the chains after it (ReceiveMerged); without it an RX chain too small for the
// packet is the one case a packet is dropped, and it is counted in `drops`.
// Sink: TX frames are consumed and their bytes summed (`checksum`), nothing is received.
//
// Permission failures send ACCESS_FAIL and complete the chain as used with length 0 (the driver
// gets its buffer back and the error is counted); malformed chains are completed the same way
// (Reject). Used elements are written as chains complete and published once per burst
// (Publish), followed by an interrupt when the driver asks for one.
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/backend/translator.hpp"
#include "core/backend/worker_env.hpp"
#include "core/base/seeded_regression.hpp"
#include "core/base/small_copy.hpp"
#include "core/virtio/device_queue.hpp"

namespace vhostlab::backend {

template <iotlb::Design D>
class NetDevice {
 public:
  // The net device drives its own translator (a member, so that the whole worker is one object
  // and the hot path reaches every part at a fixed offset).
  explicit NetDevice(WorkerEnv<D> env) : xl_(env), rx_(env.rx), tx_(env.tx) {}

  QueueTranslator<D>& translator() { return xl_; }

  // A worker pass begins: nothing of it is completed yet.
  void BeginPass() { rx_pushed_ = tx_pushed_ = false; }

  // One burst: at most kBurst TX chains. The rings are translated and their avail indexes read
  // for this burst (Worker::ServicePair). Returns whether anything moved.
  bool Burst() { return xl_.env().config.mode == DeviceMode::kSink ? SinkBurst() : LoopbackBurst(); }

  // Publishes the used elements of the pass and signals the driver if it asks for it.
  void Publish() {
    if (rx_pushed_ || tx_pushed_) ++xl_.tally().bursts;
    Publish(rx_, rx_pushed_, xl_.tally().rx_interrupts);
    Publish(tx_, tx_pushed_, xl_.tally().tx_interrupts);
  }

 private:
  using ChainStatus = virtio::ChainStatus;
  static constexpr uint64_t kHdr = sizeof(virtio::NetHdr);
  // A TX frame is a header plus at most kMaxFrame bytes (virtio-net without GSO); anything
  // else is refused before a byte is copied.
  static constexpr uint64_t kMaxFrame = 64 * 1024;

  void Publish(QueueState& q, bool pushed, uint64_t& interrupts) {
    if (!pushed || q.broken) return;
    q.ring.PublishUsed();
    if (q.call && q.ring.NeedInterrupt(xl_.env().config.event_idx)) {
      SignalEventFd(q.call.get());
      ++interrupts;
    }
  }

  // Completes the chain at the head of `q` with `len` and consumes it.
  void Complete(QueueState& q, uint16_t head, uint32_t len) {
    q.ring.PushUsed(head, len);
    q.ring.Consume();
    if (&q == &rx_) rx_pushed_ = true; else tx_pushed_ = true;
  }

  // Handles a chain that can never succeed: ACCESS_FAIL or malformed. Completed with len 0.
  // `head` is the head the chain was walked from (never read again from guest memory).
  void Reject(QueueState& q, uint16_t head, ChainStatus s, const virtio::ChainFault& fault) {
    ++xl_.tally().errors;
    if (s == ChainStatus::kAccessFail) {
      ++xl_.tally().access_fails;
      (void)xl_.env().channel.SendAccessFail(fault.addr, fault.len, fault.perm);
    }
    LogQueueError(q, "chain at head %u refused (%s): %s; completed with length 0", head,
                  s == ChainStatus::kAccessFail ? "ACCESS_FAIL" : "malformed", fault.why.c_str());
    Complete(q, head, 0);
  }

  bool TxFrameOk() {
    if (tx_chain_.readable_len >= kHdr && tx_chain_.readable_len - kHdr <= kMaxFrame)
      [[likely]] return true;
    fault_.why = "TX chain of " + std::to_string(tx_chain_.readable_len) +
                 " device-readable bytes is not a 12-byte virtio-net header plus a frame of "
                 "at most " + std::to_string(kMaxFrame) + " bytes";
    Reject(tx_, tx_chain_.head, ChainStatus::kMalformed, fault_);
    return false;
  }

  bool SinkBurst() {
    bool progress = false;
    for (uint32_t i = 0; i < kBurst && tx_.ring.Pending(); ++i) {
      const ChainStatus s = xl_.WalkNext(tx_, &tx_chain_, &fault_);
      if (s == ChainStatus::kMiss) break;
      progress = true;
      if (s != ChainStatus::kOk) {
        Reject(tx_, tx_chain_.head, s, fault_);
        continue;
      }
      if (!TxFrameOk()) continue;
      uint64_t sum = 0, skip = kHdr;
      for (const virtio::Piece& p : tx_chain_.readable) {
        const uint64_t from = std::min<uint64_t>(skip, p.len);
        skip -= from;
        for (uint64_t b = from; b < p.len; ++b) sum += p.ptr[b];
      }
      xl_.tally().checksum += sum;
      VHOSTLAB_SEEDED_WORK(VHOSTLAB_SEEDED_PACKET_WORK);
      ++xl_.tally().tx_packets;
      xl_.tally().tx_bytes += tx_chain_.readable_len - kHdr;
      Complete(tx_, tx_chain_.head, 0);
    }
    return progress;
  }

  bool LoopbackBurst() {
    bool progress = false;
    for (uint32_t i = 0; i < kBurst && tx_.ring.Pending(); ++i) {
      const ChainStatus s = xl_.WalkNext(tx_, &tx_chain_, &fault_);
      if (s == ChainStatus::kMiss) {
        // A new miss: the RX buffers these packets will need get their misses now too.
        if (xl_.fresh_miss() && rx_.ring.attached() && !rx_.stalled) xl_.MissAhead(rx_, 0);
        break;
      }
      if (s != ChainStatus::kOk) {
        progress = true;
        Reject(tx_, tx_chain_.head, s, fault_);
        continue;
      }
      if (!TxFrameOk()) {
        progress = true;
        continue;
      }
      const uint64_t frame = tx_chain_.readable_len - kHdr;
      // Find an RX chain; malformed / refused ones are completed and skipped.
      // At most a burst of refused RX chains per TX packet, and never more than the ring.
      ChainStatus rs = ChainStatus::kMalformed;
      for (uint32_t tries = 0; tries < kBurst && rx_.ring.Pending(); ++tries) {
        rs = xl_.WalkNext(rx_, &rx_chain_, &fault_);
        if (rs != ChainStatus::kMalformed && rs != ChainStatus::kAccessFail) break;
        progress = true;
        Reject(rx_, rx_chain_.head, rs, fault_);
        rs = ChainStatus::kMalformed;
      }
      if (rs != ChainStatus::kOk) break;  // no RX buffer yet, or it missed: TX stays queued
      progress = true;
      if (rx_chain_.writable_len < kHdr + frame) [[unlikely]] {
        if (xl_.env().config.mrg_rxbuf && rx_chain_.writable_len < kHdr) {
          // virtio 1.x 5.1.6.3.1: with MRG_RXBUF every buffer holds at least the header. The
          // chain is refused; the frame waits for the next one.
          fault_.why = "RX chain of " + std::to_string(rx_chain_.writable_len) +
                       " device-writable bytes cannot hold the 12-byte virtio-net header "
                       "(MRG_RXBUF)";
          Reject(rx_, rx_chain_.head, ChainStatus::kMalformed, fault_);
          continue;
        }
        if (!xl_.env().config.mrg_rxbuf) {
          ++xl_.tally().drops;
          ++xl_.tally().errors;
          LogQueueError(rx_, "RX chain at head %u holds %" PRIu64 " bytes, packet needs %"
                        PRIu64 " (MRG_RXBUF was not negotiated); packet dropped",
                        rx_chain_.head, rx_chain_.writable_len, kHdr + frame);
          Complete(tx_, tx_chain_.head, 0);
          continue;
        }
        const MergeStatus m = ReceiveMerged(frame);
        if (m == MergeStatus::kWait) break;  // more RX buffers (or their mappings) to come
        if (m == MergeStatus::kDropped) Complete(tx_, tx_chain_.head, 0);
        continue;
      }
      // Header: no offloads are negotiated, so the received header is all zero but for
      // num_buffers (one buffer). The frame is copied byte for byte.
      virtio::NetHdr hdr{};
      hdr.num_buffers = 1;
      const virtio::Piece& src = tx_chain_.readable[0];
      const virtio::Piece& dst = rx_chain_.writable[0];
      if (src.len >= kHdr + frame && dst.len >= kHdr + frame) [[likely]] {
        // Header and frame in one piece on both sides (a driver's usual layout): a fixed
        // 12-byte store and one copy, without CopyPieces' piece walk. SmallCopy has memmove's
        // semantics (a guest can point both at the same memory) without glibc's AVX-512 moves.
        std::memcpy(dst.ptr, &hdr, kHdr);
        SmallCopy(dst.ptr + kHdr, src.ptr + kHdr, frame);
      } else {
        if (dst.len >= kHdr) [[likely]]
          std::memcpy(dst.ptr, &hdr, kHdr);
        else
          virtio::CopyToPieces(reinterpret_cast<const uint8_t*>(&hdr), kHdr, rx_chain_.writable, 0);
        virtio::CopyPieces(tx_chain_.readable, kHdr, rx_chain_.writable, kHdr, frame);
      }
      VHOSTLAB_SEEDED_WORK(VHOSTLAB_SEEDED_PACKET_WORK);
      ++xl_.tally().tx_packets;
      xl_.tally().tx_bytes += frame;
      ++xl_.tally().rx_packets;
      xl_.tally().rx_bytes += frame;
      Complete(rx_, rx_chain_.head, static_cast<uint32_t>(kHdr + frame));
      Complete(tx_, tx_chain_.head, 0);
    }
    return progress;
  }

  // VIRTIO_NET_F_MRG_RXBUF: a frame larger than the RX chain at the head (rx_chain_, already
  // walked) continues in the chains after it. The chains it needs are walked first and
  // nothing is consumed unless the whole frame fits: header (num_buffers = chains used) and
  // frame are then copied across them, and each chain is completed with the bytes it got.
  // kWait: not enough RX chains yet, or one of them missed (MISS sent): the TX packet waits.
  // kDropped: the frame cannot be received (a chain after the head is refused, or it would
  // need more than kMaxMergedBuffers chains); counted as a drop and an error.
  enum class MergeStatus : uint8_t { kDone, kWait, kDropped };
  static constexpr uint32_t kMaxMergedBuffers = 64;
  MergeStatus ReceiveMerged(uint64_t frame) {
    const uint64_t need = kHdr + frame;
    uint64_t have = rx_chain_.writable_len;
    uint32_t chains = 1;
    const uint16_t avail = rx_.ring.Pending();
    while (have < need) {
      if (chains == kMaxMergedBuffers || chains == rx_.num) {
        ++xl_.tally().drops;
        ++xl_.tally().errors;
        LogQueueError(rx_, "a frame of %" PRIu64 " bytes needs more than %u RX buffers; packet "
                      "dropped", frame, chains);
        return MergeStatus::kDropped;
      }
      if (chains >= avail) return MergeStatus::kWait;
      if (merged_.size() < chains) merged_.resize(chains);
      virtio::Chain& c = merged_[chains - 1];
      const ChainStatus s = xl_.WalkAhead(rx_, static_cast<uint16_t>(chains), &c);
      if (s == ChainStatus::kMiss) {
        // Not stalled: the chains are walked again at the next burst, which asks again if
        // this MISS could not be sent (or was not asked: the replica had operations pending).
        if (!xl_.MissMayBeStale()) {
          ++xl_.tally().misses;
          (void)xl_.SendAheadMiss();
        }
        return MergeStatus::kWait;
      }
      if (s != ChainStatus::kOk) {
        ++xl_.tally().drops;
        ++xl_.tally().errors;
        LogQueueError(rx_, "RX chain %u after the head cannot take a merged frame (%s); packet "
                      "dropped", chains, xl_.ahead_fault().why.c_str());
        return MergeStatus::kDropped;
      }
      have += c.writable_len;
      ++chains;
    }
    virtio::NetHdr hdr{};
    hdr.num_buffers = static_cast<uint16_t>(chains);
    virtio::CopyToPieces(reinterpret_cast<const uint8_t*>(&hdr), kHdr, rx_chain_.writable, 0);
    uint64_t src = kHdr, left = frame;
    const uint64_t first = std::min<uint64_t>(left, rx_chain_.writable_len - kHdr);
    virtio::CopyPieces(tx_chain_.readable, src, rx_chain_.writable, kHdr, first);
    src += first;
    left -= first;
    Complete(rx_, rx_chain_.head, static_cast<uint32_t>(kHdr + first));
    for (uint32_t k = 0; k + 1 < chains; ++k) {
      const virtio::Chain& c = merged_[k];
      const uint64_t n = std::min<uint64_t>(left, c.writable_len);
      virtio::CopyPieces(tx_chain_.readable, src, c.writable, 0, n);
      src += n;
      left -= n;
      Complete(rx_, c.head, static_cast<uint32_t>(n));
    }
    ++xl_.tally().tx_packets;
    xl_.tally().tx_bytes += frame;
    ++xl_.tally().rx_packets;
    xl_.tally().rx_bytes += frame;
    Complete(tx_, tx_chain_.head, 0);
    return MergeStatus::kDone;
  }

  QueueTranslator<D> xl_;
  QueueState& rx_;
  QueueState& tx_;
  virtio::Chain tx_chain_, rx_chain_;
  std::vector<virtio::Chain> merged_;  // RX chains after the head that a merged frame uses
  virtio::ChainFault fault_;
  bool rx_pushed_ = false, tx_pushed_ = false;
};

}  // namespace vhostlab::backend
