pub use inner::Mmap;

use std::{io, ptr::NonNull};

#[cfg(not(test))]
mod inner {
    use libc::{
        MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_FAILED, MAP_HUGETLB, MAP_SHARED, PROT_READ,
        PROT_WRITE,
    };
    use log::error;
    use std::ptr;

    use super::*;

    /// An anonymous memory mapped region.
    #[derive(Debug)]
    pub struct Mmap {
        addr: NonNull<libc::c_void>,
        len: usize,
    }

    unsafe impl Send for Mmap {}

    impl Mmap {
        pub fn new(len: usize, use_huge_pages: bool) -> io::Result<Self> {
            // MAP_ANONYMOUS: mapping not backed by a file.
            // MAP_SHARED: shares this mapping, so changes are visible
            // to other processes mapping the same file.
            // No MAP_POPULATE (xswitch patch): the region is faulted
            // in by `populate` below, chunk by chunk.
            let mut flags = MAP_ANONYMOUS | MAP_SHARED;

            if use_huge_pages {
                flags |= MAP_HUGETLB;
            }

            let addr = unsafe {
                libc::mmap(
                    ptr::null_mut(),
                    len,
                    PROT_READ | PROT_WRITE, // prot
                    flags,
                    -1, // file
                    0,  // offset
                )
            };

            if addr == MAP_FAILED {
                Err(io::Error::last_os_error())
            } else {
                let addr =
                    NonNull::new(addr).expect("ptr non-null since we confirmed `mmap()` succeeded");

                // Dropped (unmapped) if populating fails.
                let mmap = Mmap { addr, len };
                populate(addr, len, use_huge_pages)?;
                Ok(mmap)
            }
        }

        /// Returns a pointer to the start of the mmap'd region.
        #[inline]
        pub fn addr(&self) -> NonNull<libc::c_void> {
            self.addr
        }
    }

    /// Bytes faulted in per `madvise` call: the longest `mmap_lock` hold
    /// (about 0.1 ms for 256 KiB of shared anonymous memory). Huge pages
    /// go one huge page (2 MiB) at a time.
    const POPULATE_CHUNK: usize = 256 << 10;
    const POPULATE_CHUNK_HUGE: usize = 2 << 20;

    /// Faults in every page of the fresh mapping `[addr, addr + len)`
    /// before the UMEM is registered (the kernel pins the pages then).
    ///
    /// xswitch patch. `MAP_POPULATE` does the same inside `mmap` with the
    /// process's `mmap_lock` held for reading the whole time: several
    /// milliseconds for a UMEM of some MiB, during which any thread that
    /// wants the lock for writing (`mmap`, `mprotect`, `munmap`: thread
    /// stacks, malloc growing a heap) waits, and every later taker waits
    /// behind that writer. `MADV_POPULATE_WRITE` per chunk takes and drops
    /// the lock per chunk, so a writer waits for one chunk at most.
    /// Kernels before 5.14 do not know it (EINVAL): then every page is
    /// written once, each fault taking the lock on its own. Unlike
    /// `MAP_POPULATE`, a failure (ENOMEM) is an error here, not a SIGBUS
    /// later.
    fn populate(addr: NonNull<libc::c_void>, len: usize, use_huge_pages: bool) -> io::Result<()> {
        let base = addr.as_ptr() as *mut u8;
        let chunk = if use_huge_pages {
            POPULATE_CHUNK_HUGE
        } else {
            POPULATE_CHUNK
        };
        let mut off = 0;
        while off < len {
            let n = chunk.min(len - off);
            // SAFETY: `[base + off, base + off + n)` lies inside the
            // mapping just created, which nothing else references yet;
            // MADV_POPULATE_WRITE only faults pages in (zero-filled).
            let r = unsafe {
                libc::madvise(base.add(off) as *mut libc::c_void, n, MADV_POPULATE_WRITE)
            };
            if r == 0 {
                off += n;
                continue;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) | Some(libc::EAGAIN) => {}
                Some(libc::EINVAL) if !use_huge_pages => {
                    // SAFETY: as above; the region is writable, private to
                    // this call, and every offset is below `len`.
                    unsafe {
                        let mut p = off;
                        while p < len {
                            base.add(p).write_volatile(0);
                            p += 4096;
                        }
                    }
                    return Ok(());
                }
                _ => return Err(e),
            }
        }
        Ok(())
    }

    impl Drop for Mmap {
        fn drop(&mut self) {
            let err = unsafe { libc::munmap(self.addr.as_ptr(), self.len) };

            if err != 0 {
                error!(
                    "`munmap()` failed with error: {}",
                    io::Error::last_os_error()
                );
            }
        }
    }
}

#[cfg(test)]
mod inner {
    use std::mem::ManuallyDrop;

    use super::*;

    #[derive(Debug)]
    struct VecParts<T> {
        ptr: NonNull<T>,
        len: usize,
        capacity: usize,
    }

    unsafe impl<T> Send for VecParts<T> {}

    impl<T> VecParts<T> {
        fn new(v: Vec<T>) -> Self {
            let mut v = ManuallyDrop::new(v);

            Self {
                ptr: NonNull::new(v.as_mut_ptr()).expect("obtained pointer from Vec"),
                len: v.len(),
                capacity: v.capacity(),
            }
        }
    }

    impl<T> Drop for VecParts<T> {
        fn drop(&mut self) {
            unsafe { Vec::from_raw_parts(self.ptr.as_ptr(), self.len, self.capacity) };
        }
    }

    /// A mocked [`Mmap`] that uses the heap for memory.
    #[derive(Debug)]
    pub struct Mmap(VecParts<u8>);

    impl Mmap {
        pub fn new(len: usize, _use_huge_pages: bool) -> io::Result<Self> {
            Ok(Self(VecParts::new(vec![0; len])))
        }

        /// Returns a pointer to the start of the mmap'd region.
        #[inline]
        pub fn addr(&self) -> NonNull<libc::c_void> {
            NonNull::new(self.0.ptr.as_ptr() as *mut libc::c_void).unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn confirm_pointer_offset_is_a_single_byte() {
        assert_eq!(std::mem::size_of::<libc::c_void>(), 1);
    }
}
