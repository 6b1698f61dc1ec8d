//! Host memory for the big per-page arrays: anonymous mappings backed by transparent huge pages where
//! the host allows (one fault per 2 MiB instead of per 4 KiB). Memory is touched lazily, so a run that
//! stops early never pays for the rest; `prefault` maps everything up front, for benchmarks that time
//! a boot step without host page faults (the kernel's memmap is mapped before it is used).

use std::ops::Deref;

/// A zero-initialised array of `T` (an atomic integer type) in its own anonymous mapping.
pub struct HostArray<T> {
    ptr: *mut T,
    len: usize,
    bytes: usize,
}

// SAFETY: HostArray owns its mapping (no other pointer to it exists) and hands out only `&[T]`, so
// sharing it is as safe as sharing a `&[T]`: fine when T is Sync (the atomics are).
unsafe impl<T: Sync> Sync for HostArray<T> {}
// SAFETY: the mapping is owned, not tied to the creating thread; moving it moves the Ts, fine for T: Send.
unsafe impl<T: Send> Send for HostArray<T> {}

impl<T> HostArray<T> {
    /// `len` zeroed elements. T must be valid when all-zero (atomic integers are).
    pub fn zeroed(len: usize) -> HostArray<T> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("array size overflows")
            .max(1);
        // SAFETY: a fresh private anonymous mapping; the kernel zero-fills it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            panic!("cannot map {bytes} bytes of host memory for the page array");
        }
        if bytes >= 4 << 20 {
            // Best effort: a host without THP just takes more, smaller faults.
            // SAFETY: advice on the mapping just created, `bytes` long; it changes no contents.
            unsafe {
                libc::madvise(p, bytes, libc::MADV_HUGEPAGE);
            }
        }
        HostArray {
            ptr: p.cast::<T>(),
            len,
            bytes,
        }
    }
}

impl<T> HostArray<T> {
    /// Map every page now (MADV_POPULATE_WRITE, Linux 5.14; best effort).
    pub fn prefault(&self) {
        // SAFETY: advice on our own mapping; failure only means the faults come later.
        unsafe {
            libc::madvise(
                self.ptr.cast::<libc::c_void>(),
                self.bytes,
                23, /* MADV_POPULATE_WRITE */
            );
        }
    }
}

impl<T> HostArray<T> {
    /// Give the host pages wholly inside elements `[start, start + n)` back (MADV_DONTNEED): they read
    /// zero afterwards and cost no memory until written again. Partial host pages at the ends are kept.
    pub fn discard(&self, start: usize, n: usize) {
        const HOST_PAGE: usize = 4096;
        let size = std::mem::size_of::<T>();
        let lo = (start * size).next_multiple_of(HOST_PAGE);
        let hi = ((start + n) * size) / HOST_PAGE * HOST_PAGE;
        if lo < hi && hi <= self.bytes {
            // SAFETY: a page-aligned range inside our own mapping; it only zeroes atomics, for which
            // zero is a valid value (readers racing with it see zero or the old value).
            unsafe {
                libc::madvise(
                    self.ptr.cast::<u8>().add(lo).cast::<libc::c_void>(),
                    hi - lo,
                    libc::MADV_DONTNEED,
                );
            }
        }
    }
}

impl<T> Deref for HostArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` zero-initialised Ts and lives as long as self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl<T> Drop for HostArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping created in `zeroed`.
        unsafe {
            libc::munmap(self.ptr.cast::<libc::c_void>(), self.bytes);
        }
    }
}

/// `MemAvailable` of this host in bytes, if /proc/meminfo says.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
