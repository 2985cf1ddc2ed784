// A seeded regression: proof that the instruction-count gates can fail.
//
// Built normally, VHOSTLAB_SEEDED_WORK(n) is nothing. The gate's self-test builds the gate
// drivers a second time with VHOSTLAB_SEEDED_REGRESSION defined (bench/CMakeLists.txt:
// iotlb_gate_seeded, datapath_gate_seeded); then it executes exactly `n` extra instructions
// (NOPs the compiler cannot remove or merge) where it is placed: once per packet in the
// backend's datapath (core/backend/device.cpp) and once per lookup in the hash designs'
// Translate (core/iotlb/hash/hash.hpp). A fixed count, so the regression each gate key sees is
// known exactly; ctest gate_catches_seeded_regression asserts both gates fail and name the keys.
#pragma once

#ifdef VHOSTLAB_SEEDED_REGRESSION
#define VHOSTLAB_SEEDED_WORK_STR2(n) #n
#define VHOSTLAB_SEEDED_WORK_STR(n) VHOSTLAB_SEEDED_WORK_STR2(n)
#define VHOSTLAB_SEEDED_WORK(n) asm volatile(".rept " VHOSTLAB_SEEDED_WORK_STR(n) "\n\tnop\n\t.endr")
#else
#define VHOSTLAB_SEEDED_WORK(n) ((void)0)
#endif

// Extra instructions per packet (about 3% of a hash/direct-4k packet, results/bench/
// datapath_gate_baseline.json) and per lookup (about 3% of a hash lookup's).
#define VHOSTLAB_SEEDED_PACKET_WORK 26
#define VHOSTLAB_SEEDED_LOOKUP_WORK 2
