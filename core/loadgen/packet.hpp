// Deterministic test frames: every byte of packet `seq` on queue `queue` is a pure function of
// (seed, queue, seq, size), so the receiver can check every byte it gets without keeping copies.
//
// Layout (size >= kMinFrame):
//   0..5   destination MAC 02:00:00:00:00:01     6..11  source MAC 02:00:00:00:00:02
//   12..13 EtherType 0x88B5 (IEEE local experimental)
//   14..17 magic "VHLB"   18..19 queue (LE u16)   20..21 size (LE u16)   22..29 seq (LE u64)
//   30..   pad[i] XOR key[(i - 30) % 8]: pad is a splitmix64 stream seeded with (seed, queue),
//          the same for every frame of the queue (computed once, kMaxFrame bytes); key is one
//          splitmix64 word of (seed, queue, seq). So every payload byte depends on its position
//          (a shifted, truncated or misplaced copy differs) and on seq (another frame's
//          payload differs in every byte with probability 1 - 2^-8 each), and a 9000-byte
//          frame costs one XOR pass to make or to check, not 1125 splitmix rounds: the
//          front-end stays cheaper than the datapath it measures.
// A forwarding peer that rewrites nothing (vhostlab loopback, testpmd io mode) returns frames
// byte-identical, so any difference is a datapath bug. Frames are at most kMaxFrame (9000)
// bytes; the size field is a u16.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>

namespace vhostlab::loadgen {

inline constexpr uint32_t kMinFrame = 30;
inline constexpr uint32_t kMaxFrame = 9000;
static_assert(kMaxFrame <= UINT16_MAX, "the frame size is carried in a u16 (bytes 20..21)");
inline constexpr char kFrameMagic[4] = {'V', 'H', 'L', 'B'};  // bytes 14..17

inline uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Makes and checks the frames of one (seed, queue).
class FrameGenerator {
 public:
  FrameGenerator(uint64_t seed, uint16_t queue) : seed_(seed), queue_(queue) {
    uint64_t state = seed ^ (uint64_t{queue} << 48) ^ 0x7061645f73747265ull;
    for (uint32_t i = 0; i < pad_.size(); i += 8) {
      const uint64_t v = SplitMix64(state);
      std::memcpy(pad_.data() + i, &v, 8);
    }
  }

  // Writes frame `seq` of `size` bytes into `out`.
  void Fill(uint8_t* out, uint32_t size, uint64_t seq) const {
    Header(out, size, seq);
    const uint64_t key = Key(seq);
    uint32_t i = kMinFrame;
    for (; i + 8 <= size; i += 8) {
      uint64_t v;
      std::memcpy(&v, pad_.data() + i, 8);
      v ^= key;
      std::memcpy(out + i, &v, 8);
    }
    for (uint32_t k = 0; i < size; ++i, ++k) out[i] = pad_[i] ^ static_cast<uint8_t>(key >> 8 * k);
  }

  // Whether `frame` is exactly frame `seq` of `size` bytes.
  // The header is compared field by field against values in registers, not against a header
  // built in memory: wide loads of bytes just stored narrower wait for every older store
  // (bench/README.md, "Store-forwarding stalls").
  bool Matches(const uint8_t* frame, uint32_t size, uint64_t seq) const {
    uint16_t queue, sz;
    uint64_t got_seq;
    std::memcpy(&queue, frame + 18, 2);
    std::memcpy(&sz, frame + 20, 2);
    std::memcpy(&got_seq, frame + 22, 8);
    if (std::memcmp(frame, kHead, sizeof(kHead)) != 0 ||
        std::memcmp(frame + 14, kFrameMagic, 4) != 0 || queue != queue_ ||
        sz != static_cast<uint16_t>(size) || got_seq != seq)
      return false;
    const uint64_t key = Key(seq);
    uint64_t diff = 0;
    uint32_t i = kMinFrame;
    for (; i + 8 <= size; i += 8) {
      uint64_t v, p;
      std::memcpy(&v, frame + i, 8);
      std::memcpy(&p, pad_.data() + i, 8);
      diff |= v ^ p ^ key;
    }
    for (uint32_t k = 0; i < size; ++i, ++k)
      diff |= frame[i] ^ pad_[i] ^ static_cast<uint8_t>(key >> 8 * k);
    return diff == 0;
  }

 private:
  static constexpr uint8_t kHead[14] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x88, 0xB5};

  void Header(uint8_t* out, uint32_t size, uint64_t seq) const {
    std::memcpy(out, kHead, 14);
    std::memcpy(out + 14, kFrameMagic, 4);
    const uint16_t sz = static_cast<uint16_t>(size);
    std::memcpy(out + 18, &queue_, 2);
    std::memcpy(out + 20, &sz, 2);
    std::memcpy(out + 22, &seq, 8);
  }
  uint64_t Key(uint64_t seq) const {
    uint64_t state = seed_ ^ (uint64_t{queue_} << 48) ^ (seq * 0xd1342543de82ef95ull);
    return SplitMix64(state);
  }

  uint64_t seed_;
  uint16_t queue_;
  std::array<uint8_t, (kMaxFrame + 7) / 8 * 8> pad_;
};

// Writes frame `seq` of `size` bytes into `out` (builds the queue's pad each call: for tests;
// a sender keeps a FrameGenerator).
inline void FillFrame(uint8_t* out, uint32_t size, uint64_t seed, uint16_t queue, uint64_t seq) {
  FrameGenerator(seed, queue).Fill(out, size, seq);
}

// Reads the sequence number a received frame claims (bytes 22..29); false when the frame is too
// short or its magic is wrong (then it cannot be attributed at all).
inline bool FrameSeq(const uint8_t* frame, uint32_t size, uint64_t* seq) {
  if (size < kMinFrame || std::memcmp(frame + 14, kFrameMagic, 4) != 0) return false;
  std::memcpy(seq, frame + 22, 8);
  return true;
}

}  // namespace vhostlab::loadgen
