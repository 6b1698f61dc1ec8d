//! Migratetypes (`include/linux/mmzone.h`) and what `__rmqueue_fallback` does with them, per kernel
//! generation (docs/model.md §5.1).
//!
//! Every free list is per order *and* migratetype; every pageblock has a migratetype (the
//! `pageblock_mt` byte of the page array: 0 while `memmap_init` has not set it, else the kernel's
//! value + 1). An allocation asks for one migratetype (`gfp_migratetype`: UNMOVABLE for GFP_KERNEL,
//! MOVABLE for `__GFP_MOVABLE`, RECLAIMABLE for `__GFP_RECLAIMABLE`); when its own lists are empty it
//! falls back to the others in the kernel's `fallbacks[]` order, stealing the *largest* block.

/// `enum migratetype`, with the kernel's values (CMA and ISOLATE are not modelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum MigrateType {
    Unmovable = 0,
    Movable = 1,
    Reclaimable = 2,
    /// MIGRATE_HIGHATOMIC (= MIGRATE_PCPTYPES): reserved by high-order atomic allocations; never a
    /// fallback target and never stolen from.
    HighAtomic = 3,
}

/// Number of modelled migratetypes (the free lists of one order).
pub const NR_MIGRATETYPES: usize = 4;

/// `/proc/pagetypeinfo`'s names, by kernel value (exported to Python as `_core.MIGRATETYPES`).
pub const MIGRATETYPE_NAMES: [&str; NR_MIGRATETYPES] =
    ["Unmovable", "Movable", "Reclaimable", "HighAtomic"];

impl MigrateType {
    pub const ALL: [MigrateType; NR_MIGRATETYPES] = [
        MigrateType::Unmovable,
        MigrateType::Movable,
        MigrateType::Reclaimable,
        MigrateType::HighAtomic,
    ];

    pub fn name(self) -> &'static str {
        MIGRATETYPE_NAMES[self as usize]
    }

    pub fn from_index(i: usize) -> Option<MigrateType> {
        MigrateType::ALL.get(i).copied()
    }

    /// By name, case-insensitive, with or without the kernel's `MIGRATE_` prefix.
    pub fn parse(name: &str) -> Option<MigrateType> {
        let n = name.to_ascii_lowercase();
        let n = n.strip_prefix("migrate_").unwrap_or(&n);
        MIGRATETYPE_NAMES
            .iter()
            .position(|m| m.to_ascii_lowercase() == n)
            .and_then(MigrateType::from_index)
    }

    /// `fallbacks[migratetype]` (mm/page_alloc.c, the same from 4.x to 6.x for these three types).
    pub fn fallbacks(self) -> &'static [MigrateType] {
        use MigrateType::{Movable, Reclaimable, Unmovable};
        match self {
            Unmovable => &[Reclaimable, Movable],
            Movable => &[Reclaimable, Unmovable],
            Reclaimable => &[Unmovable, Movable],
            MigrateType::HighAtomic => &[],
        }
    }

    /// The `pageblock_mt` byte for this type.
    pub fn encode(self) -> u8 {
        self as u8 + 1
    }

    /// The migratetype a `pageblock_mt` byte stands for. An unset byte reads as UNMOVABLE, as the
    /// kernel's zeroed pageblock bitmap does.
    pub fn decode(b: u8) -> MigrateType {
        MigrateType::from_index(usize::from(b.saturating_sub(1))).unwrap_or(MigrateType::Unmovable)
    }
}

/// `can_steal_fallback(order, start_mt)`: may an allocation of `start` that falls back to a block of
/// `order` take the rest of that block's pageblock as well?
pub fn can_steal_fallback(order: u32, start: MigrateType, pageblock_order: u32) -> bool {
    order >= pageblock_order
        || order >= pageblock_order / 2
        || matches!(start, MigrateType::Unmovable | MigrateType::Reclaimable)
}

/// How `__rmqueue_fallback` / `steal_suitable_fallback` hand the stolen block over (docs/model.md
/// §5.1). The choice of block (largest order with a suitable fallback, the head of its list) is the
/// same in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Before 5.10: the stolen block (or, when the pageblock is taken, every free block of the
    /// pageblock) moves to the *head* of the requested type's list (`list_move`); then
    /// `__rmqueue_smallest` runs again.
    MoveHead,
    /// 5.10–6.9: the same, moved to the *tail* (`move_to_free_list` → `list_move_tail`, 5.10).
    MoveTail,
    /// 6.10+ ("freelist migratetype hygiene"): a block of at least a pageblock is split for the caller
    /// at once, its pageblocks converted; a claimed pageblock's free blocks move (to the tail) and
    /// `__rmqueue_smallest` runs again; otherwise the block is split in place and its remainders stay
    /// on their own type's lists (`page_del_and_expand`). Merging with a buddy of another type
    /// re-types the buddy's pageblock.
    Claim,
}

impl Fallback {
    pub fn name(self) -> &'static str {
        match self {
            Fallback::MoveHead => "move_head",
            Fallback::MoveTail => "move_tail",
            Fallback::Claim => "claim",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_and_names() {
        for mt in MigrateType::ALL {
            assert_eq!(MigrateType::decode(mt.encode()), mt);
            assert_eq!(MigrateType::parse(mt.name()), Some(mt));
        }
        assert_eq!(MigrateType::decode(0), MigrateType::Unmovable);
        assert_eq!(
            MigrateType::parse("MIGRATE_MOVABLE"),
            Some(MigrateType::Movable)
        );
        assert_eq!(MigrateType::parse("cma"), None);
    }

    #[test]
    fn stealing_rules() {
        // pageblock_order 9: a MOVABLE request may take the pageblock only from order 4 (9/2) up
        assert!(!can_steal_fallback(3, MigrateType::Movable, 9));
        assert!(can_steal_fallback(4, MigrateType::Movable, 9));
        assert!(can_steal_fallback(0, MigrateType::Unmovable, 9));
        assert!(can_steal_fallback(0, MigrateType::Reclaimable, 9));
    }
}
