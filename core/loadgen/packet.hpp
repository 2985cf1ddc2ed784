// Deterministic test frames: every byte of packet `seq` on queue `queue` is a pure function of
// (seed, queue, seq, size), so the receiver can check every byte it gets without keeping copies.
//
// Layout (size >= kMinFrame):
//   0..5   destination MAC 02:00:00:00:00:01     6..11  source MAC 02:00:00:00:00:02
//   12..13 EtherType 0x88B5 (IEEE local experimental)
//   14..17 magic "VHLB"   18..19 queue (LE u16)   20..21 size (LE u16)   22..29 seq (LE u64)
//   30..   splitmix64 stream seeded with (seed, queue, seq)
// A forwarding peer that rewrites nothing (vhostlab loopback, testpmd io mode) returns frames
// byte-identical, so any difference is a datapath bug.
#pragma once

#include <cstdint>
#include <cstring>

namespace vhostlab::loadgen {

inline constexpr uint32_t kMinFrame = 30;
inline constexpr uint32_t kMaxFrame = 9000;

inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Writes frame `seq` of `size` bytes into `out`.
inline void FillFrame(uint8_t* out, uint32_t size, uint64_t seed, uint16_t queue, uint64_t seq) {
  static constexpr uint8_t kHead[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xB5};
  std::memcpy(out, kHead, 14);
  std::memcpy(out + 14, "VHLB", 4);
  uint16_t sz = static_cast<uint16_t>(size);
  std::memcpy(out + 18, &queue, 2);
  std::memcpy(out + 20, &sz, 2);
  std::memcpy(out + 22, &seq, 8);
  uint64_t state = seed ^ (uint64_t{queue} << 48) ^ (seq * 0xd1342543de82ef95ull);
  uint32_t i = kMinFrame;
  for (; i + 8 <= size; i += 8) {
    uint64_t v = SplitMix64(state);
    std::memcpy(out + i, &v, 8);
  }
  if (i < size) {
    uint64_t v = SplitMix64(state);
    std::memcpy(out + i, &v, size - i);
  }
}

// Reads the sequence number a received frame claims (bytes 22..29); false when the frame is too
// short or its magic is wrong (then it cannot be attributed at all).
inline bool FrameSeq(const uint8_t* frame, uint32_t size, uint64_t* seq) {
  if (size < kMinFrame || std::memcmp(frame + 14, "VHLB", 4) != 0) return false;
  std::memcpy(seq, frame + 22, 8);
  return true;
}

}  // namespace vhostlab::loadgen
