//! A global allocator that counts, per thread, the bytes live and their peak, so a test can
//! measure what one call allocated while other tests run on other threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Forwards to the system allocator and keeps per-thread counts.
pub struct Meter;

thread_local! {
    // Const-initialised cells without destructors: reading them never allocates.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get().saturating_add(delta);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
// counting touches only thread-local cells and never allocates.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            note(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) };
        note(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            note(signed(new_size) - signed(layout.size()));
        }
        new
    }
}

/// Runs `f` and returns its result with the most bytes it held allocated at once on this
/// thread, above what was live when it started.
pub fn peak_bytes_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let out = f();
    let peak = PEAK.with(Cell::get);
    (out, usize::try_from(peak - start).unwrap_or(0))
}

#[test]
fn the_meter_sees_a_large_allocation() {
    let (len, peak) = peak_bytes_of(|| std::hint::black_box(vec![1u8; 8 << 20]).len());
    assert_eq!(len, 8 << 20);
    assert!(peak >= 8 << 20, "peak {peak}");
    let ((), peak) = peak_bytes_of(|| ());
    assert!(peak < 4096, "peak {peak}");
}
