// Guest memory that may fault: a SIGBUS on the backend's mapping of front-end memory is survived.
//
// The front-end owns the files behind guest memory. It can shrink one after SET_MEM_TABLE (an
// unsealed memfd), or hand over a file that cannot be backed (an exhausted hugetlbfs, a block
// device); the next access to the missing pages raises SIGBUS, which would kill the backend.
// QEMU seals memory-backend-memfd by default, but memory-backend-file on hugetlbfs, a common
// production set-up, is not sealed, so refusing unsealed fds is not an answer.
//
// How it is survived: every mapping of guest memory (memory::Mapping, memory::PageWindow) is
// registered here. A SIGBUS whose address lies in a registered mapping is answered by mapping
// fresh anonymous zero pages over the faulting page (MAP_FIXED; the page size of a hugetlbfs
// mapping for those) and returning: the access completes on memory that belongs to nobody
// else, and the faulting thread's fault count goes up. The queue workers compare their count
// after every burst; a burst that faulted publishes nothing, and its queues are marked broken
// and reported (err eventfd, log, counters) until the front-end sets them up again. A SIGBUS
// anywhere else goes to the handler that was installed before, or kills the process as usual.
// The datapath pays nothing for this but one thread-local read per burst.
#pragma once

#include <cstdint>

namespace vhostlab::memory {

// Registers [base, base + len) as guest memory; `page` is its page size (4 KiB, or the huge
// page size of a hugetlbfs file). Installs the SIGBUS handler on first use. At most
// kMaxGuestMappings at once; returns false when the table is full (the mapping is then not
// protected, and the caller logs it).
inline constexpr int kMaxGuestMappings = 1024;
bool RegisterGuestMapping(const void* base, uint64_t len, uint64_t page);
void UnregisterGuestMapping(const void* base);

// SIGBUS faults on guest memory survived by the calling thread so far.
uint64_t ThreadGuestMemoryFaults();

}  // namespace vhostlab::memory
