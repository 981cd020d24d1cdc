//! The plugins' allocator: small blocks freed by Rust code are kept in
//! lists by size and handed out again, in front of wasi-libc's `malloc`.
//!
//! A batch crossing the boundary is made of many small strings and lists:
//! each is allocated when the host lowers it into the plugin, freed once
//! the plugin has made its own records of it, and a block of the same size
//! is allocated again for the answer. wasi-libc's `dlmalloc` merges every
//! freed block with its neighbours, which made up a quarter of a mapper
//! call; a freed block kept in its size's list is reused at once.
//!
//! Every block still comes from `malloc`, and a kept block stays allocated
//! in `malloc`'s eyes: wasi-libc frees with its own `free` some blocks it
//! got through `cabi_realloc` (the lists the host hands it), and that stays
//! correct with any block this allocator gave out. Memory is given back
//! when the instance ends: each call runs in a fresh one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;

/// Blocks are kept by size in steps of this many bytes.
const STEP: usize = 16;
/// Blocks up to `STEP * CLASSES` bytes (1 KiB) are kept.
const CLASSES: usize = 64;
/// At most this much memory is kept in the lists; past it, frees go to `free`.
const MAX_KEPT_BYTES: usize = 8 << 20;
/// `malloc`'s own alignment, which every block of a class is made with.
const ALIGN: usize = 8;

/// Size-class lists of freed blocks over the system allocator.
pub struct KeepingAllocator {
    lists: UnsafeCell<Lists>,
}

struct Lists {
    /// The first free block of each class; each free block holds the next.
    heads: [*mut u8; CLASSES],
    kept_bytes: usize,
}

// SAFETY: the allocator is installed only on wasm32-wasip2, where a plugin
// runs on one thread; nothing reaches the lists from two threads.
unsafe impl Sync for KeepingAllocator {}

impl KeepingAllocator {
    /// An allocator with empty lists.
    pub const fn new() -> Self {
        KeepingAllocator { lists: UnsafeCell::new(Lists { heads: [std::ptr::null_mut(); CLASSES], kept_bytes: 0 }) }
    }
}

impl Default for KeepingAllocator {
    fn default() -> Self {
        Self::new()
    }
}

/// The class of blocks a layout is served from, if small enough to keep.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > ALIGN || layout.size() == 0 {
        return None;
    }
    let class = (layout.size() - 1) / STEP;
    (class < CLASSES).then_some(class)
}

/// The layout every block of `class` is allocated with.
fn block_layout(class: usize) -> Layout {
    // SAFETY: a non-zero multiple of STEP with a power-of-two alignment.
    unsafe { Layout::from_size_align_unchecked((class + 1) * STEP, ALIGN) }
}

unsafe impl GlobalAlloc for KeepingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's layout, passed on.
            return unsafe { System.alloc(layout) };
        };
        // SAFETY: one thread (see `Sync`), and no reference to the lists outlives this call.
        let lists = unsafe { &mut *self.lists.get() };
        let head = lists.heads[class];
        if head.is_null() {
            // SAFETY: a valid, non-zero layout.
            return unsafe { System.alloc(block_layout(class)) };
        }
        // SAFETY: a kept block holds the pointer to the next one in its first bytes.
        lists.heads[class] = unsafe { head.cast::<*mut u8>().read() };
        lists.kept_bytes -= block_layout(class).size();
        head
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: allocated by `System` with this layout (see `alloc`).
            return unsafe { System.dealloc(ptr, layout) };
        };
        // SAFETY: one thread (see `Sync`).
        let lists = unsafe { &mut *self.lists.get() };
        let size = block_layout(class).size();
        if lists.kept_bytes + size > MAX_KEPT_BYTES {
            // SAFETY: every block of a class is allocated with its block layout.
            return unsafe { System.dealloc(ptr, block_layout(class)) };
        }
        // SAFETY: the block is at least STEP bytes and aligned to ALIGN: room for a pointer.
        unsafe { ptr.cast::<*mut u8>().write(lists.heads[class]) };
        lists.heads[class] = ptr;
        lists.kept_bytes += size;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees a valid size for the layout's alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            (Some(old), Some(new)) if old == new => ptr,
            // SAFETY: allocated by `System` with `layout` (see `alloc`).
            (None, None) => unsafe { System.realloc(ptr, layout, new_size) },
            _ => {
                // SAFETY: a valid layout; the old block is live for `layout.size()` bytes.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn a_freed_block_is_handed_out_again_for_any_size_of_its_class() {
        let allocator = KeepingAllocator::new();
        unsafe {
            let first = allocator.alloc(layout(20, 1));
            allocator.dealloc(first, layout(20, 1));
            // 17..=32 bytes share a class.
            let again = allocator.alloc(layout(32, 8));
            assert_eq!(again, first);
            let other = allocator.alloc(layout(33, 1));
            assert_ne!(other, first);
            allocator.dealloc(again, layout(32, 8));
            allocator.dealloc(other, layout(33, 1));
        }
    }

    #[test]
    fn blocks_keep_their_contents_through_a_realloc_across_classes_and_beyond_them() {
        let allocator = KeepingAllocator::new();
        unsafe {
            let mut size = 5;
            let mut block = allocator.alloc(layout(size, 1));
            std::ptr::copy_nonoverlapping(b"hello".as_ptr(), block, 5);
            for new_size in [16, 100, 4000, 10] {
                block = allocator.realloc(block, layout(size, 1), new_size);
                size = new_size;
                assert_eq!(std::slice::from_raw_parts(block, 5), b"hello");
            }
            allocator.dealloc(block, layout(size, 1));
        }
    }

    #[test]
    fn over_aligned_and_large_blocks_go_straight_to_the_system_allocator() {
        assert_eq!(class_of(layout(8, 16)), None);
        assert_eq!(class_of(layout(STEP * CLASSES + 1, 1)), None);
        assert_eq!(class_of(layout(STEP * CLASSES, 1)), Some(CLASSES - 1));
        assert_eq!(class_of(layout(1, 1)), Some(0));
    }

    #[test]
    fn no_more_than_the_cap_is_kept() {
        let allocator = KeepingAllocator::new();
        let big = layout(STEP * CLASSES, 8);
        let count = MAX_KEPT_BYTES / big.size() + 10;
        unsafe {
            let blocks: Vec<_> = (0..count).map(|_| allocator.alloc(big)).collect();
            for block in blocks {
                allocator.dealloc(block, big);
            }
            assert!((*allocator.lists.get()).kept_bytes <= MAX_KEPT_BYTES);
        }
    }
}
