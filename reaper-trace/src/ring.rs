//! Reading the kernel programs' ring buffer (`BPF_MAP_TYPE_RINGBUF`) with its data mapped once.
//!
//! The kernel lays a ring's data pages out twice in a row, so that a record that wraps around
//! the end can be read in one piece, and aya's `RingBuf` (like libbpf) maps both copies. The
//! kernel inserts every page of such a mapping at `mmap` time, so both copies count as the
//! process's resident memory: a 1 GiB ring costs 2 GiB of RSS and of address space for 1 GiB
//! of kernel memory. This reader maps the data once (ring size + one page of
//! RSS and address space) and copies the rare record that wraps around into a buffer of its
//! own. The protocol (positions, header bits, memory ordering, wake-ups) is aya's, step by step.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence};

use aya::maps::MapData;

/// The record is being written: stop here.
const BUSY_BIT: u32 = 1 << 31;
/// The record was reserved and then discarded: skip it.
const DISCARD_BIT: u32 = 1 << 30;
/// Each record starts with an 8-byte header (length and flags, page offset).
const HEADER_BYTES: usize = 8;
/// The kernel rounds every record (header and data) up to this many bytes.
const RECORD_ALIGN: usize = 8;

/// One shared mapping, unmapped when dropped.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: RawFd, len: usize, prot: i32, offset: usize) -> io::Result<Self> {
        // SAFETY: a new shared mapping of the map's descriptor; the kernel checks the bounds.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).expect("mmap does not return NULL on success"),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The three places the reader looks at: the consumer position (written by us), the producer
/// position and the data (written by the kernel).
struct Layout {
    consumer: *const AtomicUsize,
    producer: *const AtomicUsize,
    data: *const u8,
    /// The ring's size in bytes: a power of two.
    size: usize,
}

pub struct RingReader {
    layout: Layout,
    /// The consumer position as last published.
    pos: usize,
    /// The producer position as last read.
    producer_cache: usize,
    /// Records were consumed since the last full fence: the producer may be waiting to be
    /// seen before it notifies again.
    needs_wakeup: bool,
    /// A record that wraps around the end, put back together.
    wrapped: Vec<u8>,
    // The mappings and the descriptor `layout` points into, kept for as long as it is used.
    _mappings: Vec<Mapping>,
    map: Option<MapData>,
}

impl AsRawFd for RingReader {
    fn as_raw_fd(&self) -> RawFd {
        self.map.as_ref().map_or(-1, |m| m.fd().as_fd().as_raw_fd())
    }
}

impl RingReader {
    /// Maps `map`, a ring buffer of `size` bytes: the consumer page read-write, the producer
    /// page and the data (once) read-only.
    pub fn new(map: MapData, size: usize) -> io::Result<Self> {
        assert!(
            size.is_power_of_two(),
            "ring buffer sizes are powers of two"
        );
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)?;
        let producer = Mapping::new(fd, page + size, libc::PROT_READ, page)?;
        let layout = Layout {
            consumer: consumer.ptr.as_ptr().cast(),
            producer: producer.ptr.as_ptr().cast(),
            // SAFETY: the data follows the producer page, within the mapping.
            data: unsafe { producer.ptr.as_ptr().add(page) },
            size,
        };
        Ok(Self::with_layout(
            layout,
            vec![consumer, producer],
            Some(map),
        ))
    }

    fn with_layout(layout: Layout, mappings: Vec<Mapping>, map: Option<MapData>) -> Self {
        // SAFETY: the consumer position is mapped (or, in tests, allocated) and aligned.
        let pos = unsafe { &*layout.consumer }.load(Ordering::Acquire);
        Self {
            layout,
            pos,
            producer_cache: pos,
            needs_wakeup: false,
            wrapped: Vec::new(),
            _mappings: mappings,
            map,
        }
    }

    /// Hands up to `max` available records to `f`, without blocking. Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < max {
            let Some((offset, len)) = self.next_record() else {
                break;
            };
            f(self.record(offset, len));
            self.consume(len);
            n += 1;
        }
        n
    }

    /// Whether the producer is ahead. Positions are compared for equality only: the
    /// word-sized producer position may wrap around.
    fn data_available(&mut self) -> bool {
        if self.pos == self.producer_cache {
            if self.needs_wakeup {
                // Either this sees a new record or its producer sees the updated consumer
                // position and notifies.
                fence(Ordering::SeqCst);
                self.needs_wakeup = false;
            }
            // SAFETY: mapped and aligned. The kernel writes it with Release: Acquire makes the
            // record headers before it visible.
            self.producer_cache = unsafe { &*self.layout.producer }.load(Ordering::Acquire);
        }
        self.pos != self.producer_cache
    }

    /// The next committed record: (offset of its header in the data, length).
    fn next_record(&mut self) -> Option<(usize, usize)> {
        while self.data_available() {
            let offset = self.pos & (self.layout.size - 1);
            // SAFETY: headers are 8-aligned and never wrap (the size is a multiple of 8). The
            // kernel commits with a fully ordered xchg: Acquire pairs with it.
            let header = unsafe { &*self.layout.data.add(offset).cast::<AtomicU32>() }
                .load(Ordering::Acquire);
            if header & BUSY_BIT != 0 {
                if !self.needs_wakeup {
                    return None;
                }
                // Either a retry sees the committed record or its producer sees the updated
                // consumer position and notifies.
                fence(Ordering::SeqCst);
                self.needs_wakeup = false;
                continue;
            }
            let len = (header & !(BUSY_BIT | DISCARD_BIT)) as usize;
            if header & DISCARD_BIT != 0 {
                self.consume(len);
                continue;
            }
            return Some((offset, len));
        }
        None
    }

    /// The record's bytes: in place, or put back together when it wraps around the end.
    fn record(&mut self, offset: usize, len: usize) -> &[u8] {
        let size = self.layout.size;
        let start = (offset + HEADER_BYTES) & (size - 1);
        let first = len.min(size - start);
        // SAFETY: `start + first <= size` and `len - first < size`: both within the data, which
        // the kernel leaves alone until the consumer position moves past the record.
        unsafe {
            let head = std::slice::from_raw_parts(self.layout.data.add(start), first);
            if first == len {
                return head;
            }
            let tail = std::slice::from_raw_parts(self.layout.data, len - first);
            self.wrapped.clear();
            self.wrapped.extend_from_slice(head);
            self.wrapped.extend_from_slice(tail);
        }
        &self.wrapped
    }

    /// Publishes that the record (header and data, 8-aligned) may be reused.
    fn consume(&mut self, len: usize) {
        self.pos = self
            .pos
            .wrapping_add((HEADER_BYTES + len).next_multiple_of(RECORD_ALIGN));
        // SAFETY: mapped read-write and aligned. Release: the kernel reuses the space only
        // after it reads this with Acquire.
        unsafe { &*self.layout.consumer }.store(self.pos, Ordering::Release);
        self.needs_wakeup = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring in ordinary memory, written the way the kernel writes one.
    struct FakeRing {
        consumer: Box<AtomicUsize>,
        producer: Box<AtomicUsize>,
        _data: Vec<u64>,
        /// The data, written through this pointer only (the reader reads through it too).
        ptr: *mut u8,
        size: usize,
    }

    impl FakeRing {
        fn new(size: usize) -> Self {
            let mut data = vec![0u64; size / 8];
            let ptr = data.as_mut_ptr().cast();
            Self {
                consumer: Box::new(AtomicUsize::new(0)),
                producer: Box::new(AtomicUsize::new(0)),
                _data: data,
                ptr,
                size,
            }
        }

        fn reader(&self) -> RingReader {
            let layout = Layout {
                consumer: &*self.consumer,
                producer: &*self.producer,
                data: self.ptr,
                size: self.size,
            };
            RingReader::with_layout(layout, Vec::new(), None)
        }

        fn write_header(&self, offset: usize, header: u32) {
            // SAFETY: within the data, 8-aligned.
            unsafe { &*self.ptr.add(offset).cast::<AtomicU32>() }.store(header, Ordering::Release);
        }

        /// Writes a record at the producer position (header flags as given) and moves it on.
        fn push(&self, payload: &[u8], flags: u32) {
            let pos = self.producer.load(Ordering::Relaxed);
            let off = pos & (self.size - 1);
            for (i, b) in payload.iter().enumerate() {
                // SAFETY: masked into the data.
                unsafe { *self.ptr.add((off + HEADER_BYTES + i) & (self.size - 1)) = *b };
            }
            self.write_header(off, payload.len() as u32 | flags);
            self.producer.store(
                pos + (HEADER_BYTES + payload.len()).next_multiple_of(8),
                Ordering::Release,
            );
        }
    }

    fn drain_all(reader: &mut RingReader) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        reader.drain(usize::MAX, |r| out.push(r.to_vec()));
        out
    }

    #[test]
    fn records_come_out_whole_in_order_also_when_they_wrap() {
        let ring = FakeRing::new(128);
        let mut reader = ring.reader();
        assert!(drain_all(&mut reader).is_empty());
        // 8 + 40 -> 48 bytes each.
        ring.push(&[1; 40], 0);
        ring.push(&[2; 40], 0);
        assert_eq!(drain_all(&mut reader), vec![vec![1; 40], vec![2; 40]]);
        assert_eq!(ring.consumer.load(Ordering::Relaxed), 96);
        // A discarded record is skipped; the next one's header is at 112 and its data wraps
        // around the end (8 bytes before it, 22 after).
        ring.push(&[3; 8], DISCARD_BIT);
        let wrapping: Vec<u8> = (0..30).collect();
        ring.push(&wrapping, 0);
        assert_eq!(drain_all(&mut reader), vec![wrapping]);
        assert_eq!(ring.consumer.load(Ordering::Relaxed), 96 + 16 + 40);
        // And the one after it is read in place again.
        ring.push(&[4; 4], 0);
        assert_eq!(drain_all(&mut reader), vec![vec![4; 4]]);
    }

    #[test]
    fn a_busy_record_stops_the_drain_and_max_is_kept() {
        let ring = FakeRing::new(128);
        let mut reader = ring.reader();
        ring.push(&[1; 4], 0);
        ring.push(&[2; 4], 0);
        ring.push(&[3; 4], BUSY_BIT);
        let mut got = Vec::new();
        assert_eq!(reader.drain(1, |r| got.push(r.to_vec())), 1);
        assert_eq!(reader.drain(10, |r| got.push(r.to_vec())), 1);
        assert_eq!(got, vec![vec![1; 4], vec![2; 4]]);
        assert_eq!(reader.drain(10, |_| ()), 0);
        // Committed: read at last.
        ring.write_header(32, 4);
        assert_eq!(drain_all(&mut reader), vec![vec![3; 4]]);
    }
}
