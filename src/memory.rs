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

/// Whether [`release_start_up_pages`] does anything: set by the binary's `main` only, so that a
/// driver run inside another program (the tests) leaves that program's pages alone.
static START_UP_PAGES_RELEASABLE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Lets [`release_start_up_pages`] act: this process is the driver's own binary.
pub fn allow_releasing_start_up_pages() {
    START_UP_PAGES_RELEASABLE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Gives back the pages of the driver's own binary (code and read-only data) that start-up
/// touched: argument parsing, configuration, connecting, reloading the volumes, the first key
/// pool fill. Nothing runs that code again, yet the kernel keeps it mapped (and, with fault-around,
/// the 64 KiB around every page touched) for the life of the process: about a third of an idle
/// driver's resident memory. `MADV_PAGEOUT` (Linux 5.4+) unmaps those pages and lets the kernel
/// reclaim them (a page another process maps too is left alone); what runs later is read back
/// on first use, as at start. Called once, when the node first goes quiet; an older kernel
/// refuses the advice and nothing changes. (`MADV_RANDOM` on top, so that only the pages run are
/// read back, saved 0.3 MiB more and made the first publish after start 2.5 times slower: not
/// kept.)
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn release_start_up_pages() {
    if !START_UP_PAGES_RELEASABLE.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
        return;
    };
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let mut released = 0usize;
    for (start, end) in own_read_only_mappings(&maps, &exe.to_string_lossy()) {
        // SAFETY: the range is one of this process's own file-backed, read-only mappings, as
        // listed by the kernel; MADV_PAGEOUT changes no contents and no mapping, it only lets
        // clean pages go (they are read back from the file on the next access).
        let result =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        if result == 0 {
            released += end - start;
        }
    }
    tracing::debug!(
        mapped_kib = released / 1024,
        "start-up code and data of the binary given back to the kernel"
    );
}

#[cfg(not(target_os = "linux"))]
pub fn release_start_up_pages() {}

/// The address ranges of `exe`'s read-only mappings (code `r-xp`, data `r--p`) in a
/// `/proc/<pid>/maps` listing.
pub fn own_read_only_mappings(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            // range perms offset device inode path (the path may hold spaces).
            let mut rest = line;
            let mut field = || {
                rest = rest.trim_start();
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let (field, tail) = rest.split_at(end);
                rest = tail;
                field
            };
            let (range, perms) = (field(), field());
            // offset, device, inode.
            field();
            field();
            field();
            let path = rest.trim();
            if path != exe || !(perms == "r-xp" || perms == "r--p") {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::own_read_only_mappings;

    #[test]
    fn finds_the_binarys_code_and_read_only_data() {
        let maps = "\
00400000-00401000 r--p 00000000 fd:01 123 /usr/bin/cert-manager-csi-driver
00401000-01500000 r-xp 00001000 fd:01 123 /usr/bin/cert-manager-csi-driver
01500000-01700000 r--p 01100000 fd:01 123 /usr/bin/cert-manager-csi-driver
01700000-01710000 rw-p 01300000 fd:01 123 /usr/bin/cert-manager-csi-driver
01710000-01720000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 r-xp 00000000 fd:01 9 /usr/lib/other.so
7f0000002000-7f0000003000 r--p 00000000 fd:01 10 /opt/with space/cert-manager-csi-driver
";
        assert_eq!(
            own_read_only_mappings(maps, "/usr/bin/cert-manager-csi-driver"),
            [
                (0x400000, 0x401000),
                (0x401000, 0x1500000),
                (0x1500000, 0x1700000)
            ]
        );
        assert_eq!(
            own_read_only_mappings(maps, "/opt/with space/cert-manager-csi-driver"),
            [(0x7f0000002000, 0x7f0000003000)]
        );
    }
}
