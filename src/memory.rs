//! Giving the allocator's free memory back to the kernel once the node has gone quiet.
//!
//! A burst of publishes or renewals leaves glibc's heap full of small free chunks between the
//! volumes' live state (keys, CSRs, gRPC and HTTP buffers of the burst); glibc returns only the
//! top of a heap on its own, so the resident set stays at the burst's peak. `malloc_trim(0)`
//! releases every whole free page inside the heaps too. It runs once, after the node has been
//! quiet for a moment (see `keys::pool`'s refill thread), never on a timer of its own.

/// Releases the allocator's free pages (glibc); nothing with other allocators.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_heap() {
    // SAFETY: malloc_trim has no preconditions: it walks glibc's own arenas under their locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Releases the allocator's free pages (glibc); nothing with other allocators.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() {}
