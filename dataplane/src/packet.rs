//! Packet buffers, batches and the per-thread buffer pool.
//!
//! A [`Packet`] owns a fixed-size buffer of [`FRAME_SIZE`] bytes with
//! [`HEADROOM`] bytes kept free in front of the frame so that a VLAN tag can be
//! pushed without moving the payload. Buffers are allocated once, when a
//! [`PacketPool`] is created, and recycled; nothing on the packet path
//! allocates. A [`PacketBatch`] carries up to [`BATCH_SIZE`] packets through
//! one pass of the pipeline.
//!
//! Accounting: every buffer is either in a pool, in a batch, or in a port's
//! ring. Pools count what they created so tests can check that none leaked.

/// Bytes per buffer (one AF_XDP frame).
pub const FRAME_SIZE: usize = 2048;
/// Bytes kept free in front of a received frame.
pub const HEADROOM: usize = 64;
/// The largest frame a buffer can hold once headroom is set aside.
pub const MAX_FRAME_LEN: usize = FRAME_SIZE - HEADROOM;
/// Packets per batch on the PMD path.
pub const BATCH_SIZE: usize = 32;

/// One frame in a fixed buffer: bytes `head..head+len` of `buf`.
pub struct Packet {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl Packet {
    /// A new, empty buffer. Allocates: use a [`PacketPool`] on the hot path.
    pub fn new() -> Self {
        Packet {
            buf: vec![0u8; FRAME_SIZE].into_boxed_slice(),
            head: HEADROOM,
            len: 0,
        }
    }

    /// A new buffer holding a copy of `frame` (tests and tools; allocates).
    /// `None` when the frame does not fit.
    pub fn from_bytes(frame: &[u8]) -> Option<Self> {
        let mut p = Packet::new();
        p.set_data(frame).then_some(p)
    }

    /// Replaces the contents with a copy of `frame`, restoring the headroom.
    /// Returns false (contents unchanged) when it does not fit.
    #[inline]
    pub fn set_data(&mut self, frame: &[u8]) -> bool {
        if frame.len() > MAX_FRAME_LEN {
            return false;
        }
        self.head = HEADROOM;
        self.len = frame.len();
        self.buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
        true
    }

    /// Resets to an empty frame with full headroom.
    #[inline]
    pub fn clear(&mut self) {
        self.head = HEADROOM;
        self.len = 0;
    }

    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }

    /// The frame bytes, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }

    /// Frame length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length frame.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free bytes in front of the frame.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Opens `n` bytes at offset `at` of the frame (bytes before `at` move
    /// `n` bytes towards the front; the new bytes are zero). Used to insert a
    /// VLAN tag after the MAC addresses. False, unchanged, if `at > len` or
    /// the headroom is too small.
    pub fn insert_gap(&mut self, at: usize, n: usize) -> bool {
        if at > self.len || n > self.head {
            return false;
        }
        let old = self.head;
        self.head -= n;
        self.buf.copy_within(old..old + at, self.head);
        self.buf[self.head + at..self.head + at + n].fill(0);
        self.len += n;
        true
    }

    /// Removes `n` bytes at offset `at` (bytes before `at` move back by
    /// `n`). False, unchanged, if the range is outside the frame.
    pub fn remove_range(&mut self, at: usize, n: usize) -> bool {
        if at.checked_add(n).is_none_or(|end| end > self.len) {
            return false;
        }
        let old = self.head;
        self.buf.copy_within(old..old + at, old + n);
        self.head += n;
        self.len -= n;
        true
    }
}

impl Default for Packet {
    fn default() -> Self {
        Packet::new()
    }
}

impl Clone for Packet {
    fn clone(&self) -> Self {
        Packet {
            buf: self.buf.clone(),
            head: self.head,
            len: self.len,
        }
    }
}

impl core::fmt::Debug for Packet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Packet")
            .field("len", &self.len)
            .field("head", &self.head)
            .finish()
    }
}

/// Up to [`BATCH_SIZE`] packets. The backing vector is allocated once with
/// that capacity and never grows.
#[derive(Debug)]
pub struct PacketBatch {
    pkts: Vec<Packet>,
}

impl PacketBatch {
    /// An empty batch with room for [`BATCH_SIZE`] packets.
    pub fn new() -> Self {
        PacketBatch {
            pkts: Vec::with_capacity(BATCH_SIZE),
        }
    }
    /// Adds a packet; gives it back when the batch is full.
    #[inline]
    pub fn push(&mut self, p: Packet) -> Result<(), Packet> {
        if self.pkts.len() >= BATCH_SIZE {
            return Err(p);
        }
        self.pkts.push(p);
        Ok(())
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.pkts.len()
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pkts.is_empty()
    }
    #[inline]
    pub fn is_full(&self) -> bool {
        self.pkts.len() >= BATCH_SIZE
    }
    /// Free slots.
    #[inline]
    pub fn room(&self) -> usize {
        BATCH_SIZE - self.pkts.len()
    }
    #[inline]
    pub fn iter(&self) -> core::slice::Iter<'_, Packet> {
        self.pkts.iter()
    }
    #[inline]
    pub fn iter_mut(&mut self) -> core::slice::IterMut<'_, Packet> {
        self.pkts.iter_mut()
    }
    /// Takes every packet out, in order.
    #[inline]
    pub fn drain(&mut self) -> std::vec::Drain<'_, Packet> {
        self.pkts.drain(..)
    }
    /// Takes the first `n` packets out, in order (the rest stay).
    #[inline]
    pub fn drain_front(&mut self, n: usize) -> std::vec::Drain<'_, Packet> {
        let n = n.min(self.pkts.len());
        self.pkts.drain(..n)
    }
}

impl Default for PacketBatch {
    fn default() -> Self {
        PacketBatch::new()
    }
}

/// A single-thread free list of buffers, filled at creation.
#[derive(Debug)]
pub struct PacketPool {
    free: Vec<Packet>,
    created: usize,
}

impl PacketPool {
    /// A pool holding `n` fresh buffers.
    pub fn new(n: usize) -> Self {
        let mut free = Vec::with_capacity(n);
        free.resize_with(n, Packet::new);
        PacketPool { free, created: n }
    }
    /// A buffer, or `None` when the pool is exhausted (count `umem_exhausted`).
    #[inline]
    pub fn alloc(&mut self) -> Option<Packet> {
        let mut p = self.free.pop()?;
        p.clear();
        Some(p)
    }
    /// Returns a buffer. The free list never grows beyond what was created,
    /// so this does not allocate.
    #[inline]
    pub fn free(&mut self, p: Packet) {
        debug_assert!(self.free.len() < self.free.capacity());
        self.free.push(p);
    }
    /// Buffers currently in the pool.
    pub fn available(&self) -> usize {
        self.free.len()
    }
    /// Buffers this pool created.
    pub fn created(&self) -> usize {
        self.created
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_and_remove_gap_move_the_header() {
        let mut p = Packet::from_bytes(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        assert!(p.insert_gap(2, 4));
        assert_eq!(p.data(), &[1, 2, 0, 0, 0, 0, 3, 4, 5, 6, 7, 8]);
        assert!(p.remove_range(2, 4));
        assert_eq!(p.data(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(!p.remove_range(6, 4));
        assert!(!p.insert_gap(9, 1));
        assert!(!p.insert_gap(0, HEADROOM + 1));
    }

    #[test]
    fn oversize_frame_is_refused() {
        assert!(Packet::from_bytes(&vec![0; MAX_FRAME_LEN + 1]).is_none());
        assert!(Packet::from_bytes(&vec![0; MAX_FRAME_LEN]).is_some());
    }

    #[test]
    fn pool_recycles_without_growing() {
        let mut pool = PacketPool::new(2);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        assert!(pool.alloc().is_none());
        pool.free(a);
        pool.free(b);
        assert_eq!(pool.available(), 2);
        assert_eq!(pool.created(), 2);
    }

    #[test]
    fn batch_is_bounded() {
        let mut b = PacketBatch::new();
        for _ in 0..BATCH_SIZE {
            b.push(Packet::new()).unwrap();
        }
        assert!(b.push(Packet::new()).is_err());
        assert_eq!(b.drain_front(5).count(), 5);
        assert_eq!(b.len(), BATCH_SIZE - 5);
    }
}
