// Prefetch hints: ask for a cache line before the code that needs it, so that the misses of
// several packets are in flight together instead of one after another.
//
// Why it matters here: every line of a ring or buffer that the other side wrote (or read) last
// is held by that side's core. Measured on this project's 2-vCPU AMD EPYC VMs, a cache line's
// round trip between the two vCPUs takes about 480 ns, and a store into such a line waits in
// the store queue until the line is back; a run of them fills the queue and stops the core
// (bench/README.md, "The front-end's stores").
//
// A prefetch never faults and changes no memory; callers still give it only addresses inside
// the buffers they own.
#pragma once

namespace vhostlab {

// The line at `p`, for reading.
[[gnu::always_inline]] inline void PrefetchRead(const void* p) { __builtin_prefetch(p, 0, 3); }

// The line at `p`, with the intent to write it: the line is fetched exclusive, so the store
// that follows does not have to ask the other core to give up its copy again. PREFETCHW is on
// every AMD64 CPU and on Intel CPUs since Broadwell (older ones treat it as a no-op); GCC emits
// it for __builtin_prefetch(p, 1) only with -mprfchw, which -march=x86-64-v3 leaves out.
[[gnu::always_inline]] inline void PrefetchWrite(const void* p) {
#if defined(__x86_64__)
  asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p, 1, 3);
#endif
}

}  // namespace vhostlab
