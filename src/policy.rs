//! What differs between kernel generations, in one place (spec §9.4, §0.2, the fidelity review §4,
//! docs/model.md §11).
//! Each fact is a method of `Policy`; the boot paths ask these, never the policy's name.

use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::memblock::Region;
use crate::migratetype::Fallback;

/// The variants are in release order (`Policy::ALL`), so `p >= Policy::V5_8` reads "5.8 or later"
/// (the 2025 rework counts as the latest; posting-v2 sits between v4.13 and v4.17, as it was posted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    /// No deferral at all (`CONFIG_DEFERRED_STRUCT_PAGE_INIT=n`).
    Eager,
    /// v4.2–v4.5: a fixed 2 GiB prefix per node, rest in per-node threads, no on-demand growth.
    V4_2,
    /// v4.6–v4.12: prefix `max(2 GiB, node_spanned_pages >> 8)` (Li Zhang, 987b3095c2a7).
    V4_6,
    /// v4.13–v4.16: as v4.6 plus the memblock-reserved memory within that prefix (Michal Hocko,
    /// 864b9a393dcb, `reset_deferred_meminit`), in the 4.15 fixed units (fault `bytes_as_pages`: 4.13/4.14).
    V4_13,
    /// The Feb 2018 v2 posting (seed): one global grow lock, key disabled under it before the
    /// per-node threads run, grow returns "initialised >= needed".
    PostingV2,
    /// As merged in v4.17: per-node lock held with IRQs off for the whole pass, key disabled after
    /// all passes, snapshot re-checked under the lock, grow returns "initialised > 0".
    V4_17,
    /// v5.2–v5.6 (Alexander Duyck): zone free-range iterator, `deferred_init_maxorder` (init then
    /// free per MAX_ORDER block) in grow and pass, grow stops only after crossing a section
    /// boundary, "retry only once"; the pass still holds the node lock with IRQs off.
    V5_2,
    /// v5.7: the pass claims its node (fdp := ULONG_MAX) under the lock, drops it and runs with
    /// interrupts on; grow has no key re-check and returns False on a claimed node.
    V5_7,
    /// v5.8–v5.9 (Daniel Jordan): padata inside each node's pass, one job per free range; the defer
    /// rule counts memory pfns only (`memmap_init` over memblock regions, with the 5.11 fix).
    V5_8,
    /// v5.10–v6.3: boot frees (`__free_pages_core`) go to the free-list tail (FPI_TO_TAIL).
    V5_10,
    /// v6.4–v6.10: `deferred_free_pages` frees whole aligned MAX_ORDER blocks at MAX_PAGE_ORDER.
    V6_4,
    /// v6.11+: generic `max_threads` = node CPUs (x86 unchanged); `Memory:` printed after the passes
    /// (Baoquan He, "mm/mm_init.c: print mem_init info after defer_init is done", mm tree June 2024).
    V6_11,
    /// Mike Rapoport's 2025 posting "mm/mm_init: simplify deferred init of struct pages" (merge release
    /// unconfirmed): one padata job per zone, one init+free loop per MAX_ORDER chunk, grow by whole
    /// sections, fdp section aligned or ULONG_MAX.
    Rework2025,
}

/// `LIMIT` of the defer rule (spec §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EarlyLimit {
    /// Never defer.
    Never,
    /// 4.2–4.5: 2 GiB of pages.
    TwoGiB,
    /// 4.6–4.12: `max(2 GiB, node_spanned >> 8)`.
    Sized,
    /// 4.13–4.16: `min(Sized + PHYS_PFN(reserved within [start, start + Sized]), node_spanned)`.
    SizedPlusReserved,
    /// 4.17+: `min(PAGES_PER_SECTION, node_spanned)` (5.0+ the literal section; the same cut).
    OneSection,
}

/// Which pfns the defer rule's counter counts (spec §2.3 note a, review #5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferCount {
    /// 4.2–5.7 `memmap_init_zone` walks the zone span: every pfn of a present section
    /// (`early_pfn_valid`) that is the node's memory or no node's memory (a hole) counts.
    ValidPfns,
    /// 5.8+ `memmap_init` walks memblock memory regions: only the node's memory pfns count.
    MemoryPfns,
}

/// How grow initialises and frees (spec §3.2, §5.7, §5.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowWalk {
    /// 4.17–5.1: section steps `ALIGN(spfn + PPS, PPS)` over the free ranges until `need`, then
    /// free everything initialised (two passes over the whole grown range).
    Sections,
    /// 5.2+: `deferred_init_maxorder` steps; stop only after crossing a section boundary with
    /// `got >= need`; fdp := the next unprocessed pfn (ULONG_MAX when the iterator runs out).
    MaxOrder,
    /// 2025: the chunk function over whole sections `[spfn, SECTION_ALIGN_UP(spfn + 1))` until
    /// `need`; fdp := the next section (ULONG_MAX if nothing was found).
    Sections2025,
}

/// How the per-node pass walks its node (spec §4, §5.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassWalk {
    /// 4.15–5.1: initialise every deferred free page, then free them all.
    TwoPass,
    /// 5.2+: per job `[s, e)` the chunk function `deferred_init_maxorder` steps (init then free per
    /// MAX_ORDER block).
    MaxOrder,
    /// 2025: per job the single-loop chunk function (init then free each MAX_ORDER piece).
    Chunks2025,
}

/// How the per-node pass hands its work to padata (spec §5.9, §5.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadataJobs {
    /// No padata: the pass runs its jobs itself, in order (up to 5.7).
    None,
    /// 5.8+: one padata job per free range, its end rounded up to a section.
    PerFreeRange,
    /// The 2025 rework: one padata job for the whole remaining zone.
    PerZone,
}

/// How `deferred_free_pages` releases a run (spec §3.3, §5.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeRuns {
    /// 4.8–6.3: runs split at pageblock boundaries, a full aligned pageblock at `pageblock_order`,
    /// the rest page by page.
    Pageblock,
    /// 6.4+: a full aligned MAX_ORDER block at `MAX_PAGE_ORDER`, anything else page by page.
    MaxOrder,
}

/// Where boot-time releases (`__free_pages_core`) link a block (docs/model.md §11.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootFree {
    /// Before 5.10: `__free_one_page`'s rule: the tail if the next-order buddy is free (orders below
    /// `max_order - 1`), else the head.
    MergeLikely,
    /// 5.10+: `FPI_TO_TAIL`.
    Tail,
}

/// Where `mem_init_print_info()` prints `Memory: X/Y available` (docs/model.md §11.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemInitPrint {
    /// In `mm_core_init`, right after `memblock_free_all`.
    Early,
    /// At the end of `page_alloc_init_late`, after the passes (6.11+).
    Late,
}

/// The per-node pass's use of `node_size_lock` (spec §4, §5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassLock {
    /// No lock (v4.2; posting-v2 disabled the key before the passes).
    None,
    /// 4.17–5.6: held with IRQs off for the whole pass.
    WholePass,
    /// 5.7+: taken to claim the node (fdp := ULONG_MAX), dropped before any page is touched.
    Claim,
}

/// Which lock serialises growth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrowLock {
    Global,
    PerNode,
}

/// When `page_alloc_init_late` turns the static key off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDisable {
    /// No key: the policy has no on-demand hook.
    NoKey,
    /// Under the grow lock, before the per-node passes start (v1–v4 postings).
    BeforePasses,
    /// After every per-node pass finished (v4.17).
    AfterPasses,
}

impl GrowLock {
    pub fn name(self) -> &'static str {
        match self {
            GrowLock::Global => "global",
            GrowLock::PerNode => "per_node",
        }
    }
}

impl KeyDisable {
    pub fn name(self) -> &'static str {
        match self {
            KeyDisable::NoKey => "no_key",
            KeyDisable::BeforePasses => "before_passes",
            KeyDisable::AfterPasses => "after_passes",
        }
    }
}

impl DeferCount {
    pub fn name(self) -> &'static str {
        match self {
            DeferCount::ValidPfns => "valid_pfns",
            DeferCount::MemoryPfns => "memory_pfns",
        }
    }
}

impl GrowWalk {
    pub fn name(self) -> &'static str {
        match self {
            GrowWalk::Sections => "sections",
            GrowWalk::MaxOrder => "max_order",
            GrowWalk::Sections2025 => "sections_2025",
        }
    }
}

impl PassWalk {
    pub fn name(self) -> &'static str {
        match self {
            PassWalk::TwoPass => "two_pass",
            PassWalk::MaxOrder => "max_order",
            PassWalk::Chunks2025 => "chunks_2025",
        }
    }
}

impl PadataJobs {
    pub fn name(self) -> &'static str {
        match self {
            PadataJobs::None => "none",
            PadataJobs::PerFreeRange => "per_free_range",
            PadataJobs::PerZone => "per_zone",
        }
    }
}

impl FreeRuns {
    pub fn name(self) -> &'static str {
        match self {
            FreeRuns::Pageblock => "pageblock",
            FreeRuns::MaxOrder => "max_order",
        }
    }
}

impl BootFree {
    pub fn name(self) -> &'static str {
        match self {
            BootFree::MergeLikely => "merge_likely",
            BootFree::Tail => "tail",
        }
    }
}

impl MemInitPrint {
    pub fn name(self) -> &'static str {
        match self {
            MemInitPrint::Early => "early",
            MemInitPrint::Late => "late",
        }
    }
}

impl PassLock {
    pub fn name(self) -> &'static str {
        match self {
            PassLock::None => "none",
            PassLock::WholePass => "whole_pass",
            PassLock::Claim => "claim",
        }
    }
}

/// The value of one fact of the policy table (`Policy::facts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactValue {
    Bool(bool),
    Name(&'static str),
    /// `Policy::early_limit` of this policy, exported as a callable `(geometry, node_spanned)`.
    EarlyLimit(Policy),
}

impl Policy {
    /// The generation modelled when none is asked for: v4.17, the on-demand series as merged (exported
    /// to Python as `_core.DEFAULT_POLICY`).
    pub const DEFAULT: Policy = Policy::V4_17;

    /// Every policy, in release order.
    pub const ALL: [Policy; 13] = [
        Policy::Eager,
        Policy::V4_2,
        Policy::V4_6,
        Policy::V4_13,
        Policy::PostingV2,
        Policy::V4_17,
        Policy::V5_2,
        Policy::V5_7,
        Policy::V5_8,
        Policy::V5_10,
        Policy::V6_4,
        Policy::V6_11,
        Policy::Rework2025,
    ];

    /// The policy table as data, exported to Python as `_core.POLICY_FACTS[name]` so that no layer
    /// above re-decides a policy by its name. To add a policy: its variant in `ALL`, `name()` and one
    /// arm in each fact's method below; to add a fact: one more entry here (Python reads it by name).
    pub fn facts(self) -> Vec<(&'static str, FactValue)> {
        use FactValue::{Bool, EarlyLimit, Name};
        vec![
            ("name", Name(self.name())),
            ("title", Name(self.title())),
            ("defers", Bool(self.defers())),
            ("grows", Bool(self.grows())),
            ("static_key", Bool(self.key_disable() != KeyDisable::NoKey)),
            ("grow_lock", Name(self.grow_lock().name())),
            ("key_disable", Name(self.key_disable().name())),
            ("pass_holds_node_lock", Bool(self.pass_holds_node_lock())),
            ("early_limit", EarlyLimit(self)),
            ("defer_count", Name(self.defer_count().name())),
            ("grow_walk", Name(self.grow_walk().name())),
            (
                "grow_rechecks_key",
                Bool(self.grows() && self.grow_rechecks_key()),
            ),
            (
                "grow_retry_once",
                Bool(self.grows() && self.grow_retry_once()),
            ),
            ("pass_walk", Name(self.pass_walk().name())),
            ("pass_lock", Name(self.pass_lock().name())),
            ("claims_node", Bool(self.pass_lock() == PassLock::Claim)),
            ("padata_jobs", Name(self.padata_jobs().name())),
            ("padata", Bool(self.padata())),
            // the cost model's names: the job structure of the pass (padata's or the 5.2/5.7 loop's)
            ("pass_jobs", Name(self.pass_jobs().name())),
            ("free_runs", Name(self.free_runs().name())),
            ("boot_free", Name(self.boot_free().name())),
            ("fallback", Name(self.fallback().name())),
            ("nofragment", Bool(self.nofragment())),
            ("pcp", Name(self.pcp().name())),
            ("mem_init_print", Name(self.mem_init_print().name())),
        ]
    }

    /// Whether `memmap_init` may leave struct pages to deferred init (`early_limit` is Some).
    pub fn defers(self) -> bool {
        self.early_limit_rule() != EarlyLimit::Never
    }

    /// The policy called `name`; InvalidArgument listing every name, and the closest one to a misspelt
    /// `name` (at most 2 edits, fewer than half its letters: "v4.71" -> "v4.17", a swap).
    pub fn parse(name: &str) -> Result<Policy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                let close = POLICY_NAMES
                    .into_iter()
                    .map(|p| (edit_distance(name, p), p))
                    .filter(|&(d, p)| d <= 2 && 2 * d < p.len())
                    .min();
                let hint = close.map_or(String::new(), |(_, p)| format!("; did you mean {p:?}?"));
                Error::InvalidArgument(format!(
                    "unknown policy {name:?}: expected one of {POLICY_NAMES:?}{hint}"
                ))
            })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Policy::Eager => "eager",
            Policy::V4_2 => "v4.2",
            Policy::V4_6 => "v4.6",
            Policy::V4_13 => "v4.13",
            Policy::PostingV2 => "posting-v2",
            Policy::V4_17 => "v4.17",
            Policy::V5_2 => "v5.2",
            Policy::V5_7 => "v5.7",
            Policy::V5_8 => "v5.8",
            Policy::V5_10 => "v5.10",
            Policy::V6_4 => "v6.4",
            Policy::V6_11 => "v6.11",
            Policy::Rework2025 => "rework-2025",
        }
    }

    /// One line on what this generation changes, for reports (`pgdefer: policy v5.8 (...)`).
    pub const fn title(self) -> &'static str {
        match self {
            Policy::Eager => "no deferral (CONFIG_DEFERRED_STRUCT_PAGE_INIT=n)",
            Policy::V4_2 => "v4.2: fixed 2 GiB prefix per node, no on-demand growth",
            Policy::V4_6 => "v4.6: prefix max(2 GiB, node spanned / 256), no on-demand growth",
            Policy::V4_13 => "v4.13: v4.6's prefix plus the memblock-reserved bytes inside it",
            Policy::PostingV2 => {
                "Feb 2018 v2 posting: global grow lock, key off before the per-node threads"
            }
            Policy::V4_17 => "v4.17 as merged: per-node lock, key off after all passes",
            Policy::V5_2 => {
                "v5.2: zone free-range walk, init then free per MAX_ORDER block, grow to a section boundary"
            }
            Policy::V5_7 => "v5.7: the pass claims its node and runs with interrupts on",
            Policy::V5_8 => "v5.8: padata workers inside each node's pass",
            Policy::V5_10 => "v5.10: boot frees to the free list's tail (FPI_TO_TAIL)",
            Policy::V6_4 => "v6.4: whole MAX_ORDER blocks freed at MAX_PAGE_ORDER",
            Policy::V6_11 => "v6.11: the Memory: line printed after the passes",
            Policy::Rework2025 => {
                "2025 rework: one padata job per zone, growth by whole sections"
            }
        }
    }

    pub fn early_limit_rule(self) -> EarlyLimit {
        match self {
            Policy::Eager => EarlyLimit::Never,
            Policy::V4_2 => EarlyLimit::TwoGiB,
            Policy::V4_6 => EarlyLimit::Sized,
            Policy::V4_13 => EarlyLimit::SizedPlusReserved,
            _ => EarlyLimit::OneSection,
        }
    }

    /// `LIMIT` of the defer rule (spec §2.3) for a node `[node_start, node_start + node_spanned)`:
    /// pages of the last zone initialised before the cut may happen at the next section boundary.
    /// None: never defer. `reserved` are memblock's merged reserved byte ranges; `bytes_as_pages` is the
    /// 4.13/4.14 bug (spec §8 B4): the helper was called with pfns as addresses and its byte sum
    /// added to a page count.
    pub fn early_limit(
        self,
        g: &Geometry,
        node_start: u64,
        node_spanned: u64,
        reserved: &[Region],
        bytes_as_pages: bool,
    ) -> Option<u64> {
        let two_gib = (2u64 << 30) >> g.page_shift;
        let sized = two_gib.max(node_spanned >> 8);
        match self.early_limit_rule() {
            EarlyLimit::Never => None,
            EarlyLimit::TwoGiB => Some(two_gib),
            EarlyLimit::Sized => Some(sized),
            EarlyLimit::SizedPlusReserved => {
                let added = if bytes_as_pages {
                    reserved_within(reserved, node_start, node_start + sized)
                } else {
                    let within = reserved_within(
                        reserved,
                        node_start << g.page_shift,
                        (node_start + sized) << g.page_shift,
                    );
                    within >> g.page_shift // PHYS_PFN
                };
                Some((sized + added).min(node_spanned))
            }
            EarlyLimit::OneSection => Some(g.pages_per_section().min(node_spanned)),
        }
    }

    pub fn defer_count(self) -> DeferCount {
        if self.padata() {
            DeferCount::MemoryPfns
        } else {
            DeferCount::ValidPfns
        }
    }

    /// Whether the per-node pass runs padata jobs (5.8+); the threads are `crate::padata`'s.
    pub fn padata(self) -> bool {
        self.padata_jobs() != PadataJobs::None
    }

    /// How the pass hands its jobs to padata (`max_threads` = the node's CPUs, at least 1: x86 from
    /// 5.8, every architecture from 6.11; the model is x86_64).
    pub fn padata_jobs(self) -> PadataJobs {
        // By release order, so that a later generation gets padata by default.
        match self {
            p if p < Policy::V5_8 => PadataJobs::None,
            Policy::Rework2025 => PadataJobs::PerZone,
            _ => PadataJobs::PerFreeRange,
        }
    }

    /// The pass's job structure: one job per free range (5.2–5.7 walk the same steps in one loop),
    /// or one per zone (2025).
    pub fn pass_jobs(self) -> PadataJobs {
        match self.padata_jobs() {
            PadataJobs::PerZone => PadataJobs::PerZone,
            _ => PadataJobs::PerFreeRange,
        }
    }

    pub fn free_runs(self) -> FreeRuns {
        if matches!(self, Policy::V6_4 | Policy::V6_11 | Policy::Rework2025) {
            FreeRuns::MaxOrder
        } else {
            FreeRuns::Pageblock
        }
    }

    pub fn boot_free(self) -> BootFree {
        match self {
            Policy::V5_10 | Policy::V6_4 | Policy::V6_11 | Policy::Rework2025 => BootFree::Tail,
            // before 5.10: __free_one_page's head rule (review #8/D3, docs/model.md §11.7)
            _ => BootFree::MergeLikely,
        }
    }

    /// How `__rmqueue_fallback` hands a stolen block over (docs/model.md §5.1): `list_move` to the
    /// head before 5.10, `move_to_free_list` to the tail from 5.10, the 6.10 "freelist hygiene" rework
    /// from 6.11.
    pub fn fallback(self) -> Fallback {
        match self {
            Policy::V5_10 | Policy::V6_4 => Fallback::MoveTail,
            Policy::V6_11 | Policy::Rework2025 => Fallback::Claim,
            _ => Fallback::MoveHead,
        }
    }

    /// The per-CPU page lists' rules (docs/model.md §5.3): 4.17's for every generation before
    /// 5.10, 5.14's from `v5.10` on (5.10–5.13 are not separated).
    pub fn pcp(self) -> crate::pcp::PcpRules {
        match self {
            Policy::V5_10 | Policy::V6_4 | Policy::V6_11 | Policy::Rework2025 => {
                crate::pcp::PcpRules::V5_14
            }
            _ => crate::pcp::PcpRules::V4_17,
        }
    }

    /// Whether `alloc_flags_nofragment` exists (5.0+): a Normal-zone request whose node also has a
    /// populated DMA32 falls back only to whole pageblocks until every zone has been tried.
    pub fn nofragment(self) -> bool {
        // v5.2 is the first modelled generation from 5.0 on
        self >= Policy::V5_2
    }

    pub fn mem_init_print(self) -> MemInitPrint {
        if matches!(self, Policy::V6_11 | Policy::Rework2025) {
            MemInitPrint::Late
        } else {
            MemInitPrint::Early
        }
    }

    /// Whether the allocator has the on-demand grow hook.
    pub fn grows(self) -> bool {
        !matches!(
            self,
            Policy::Eager | Policy::V4_2 | Policy::V4_6 | Policy::V4_13
        )
    }

    pub fn grow_walk(self) -> GrowWalk {
        match self {
            Policy::Rework2025 => GrowWalk::Sections2025,
            Policy::V5_2
            | Policy::V5_7
            | Policy::V5_8
            | Policy::V5_10
            | Policy::V6_4
            | Policy::V6_11 => GrowWalk::MaxOrder,
            _ => GrowWalk::Sections,
        }
    }

    pub fn pass_walk(self) -> PassWalk {
        match self.grow_walk() {
            GrowWalk::MaxOrder => PassWalk::MaxOrder,
            GrowWalk::Sections2025 => PassWalk::Chunks2025,
            GrowWalk::Sections => PassWalk::TwoPass,
        }
    }

    pub fn grow_lock(self) -> GrowLock {
        if self == Policy::PostingV2 {
            GrowLock::Global
        } else {
            GrowLock::PerNode
        }
    }

    /// Whether grow, under its lock, returns early when the key is already off (4.17–5.6: the
    /// pass held the lock and the key went off after it; 5.7 removed the check).
    pub fn grow_rechecks_key(self) -> bool {
        matches!(self, Policy::PostingV2 | Policy::V4_17 | Policy::V5_2)
    }

    /// What grow returns when it finds the key already off after taking the lock.
    pub fn grow_result_key_off(self) -> bool {
        self != Policy::PostingV2
    }

    /// Whether grow, finding no free range at or after its snapshot, clears fdp and returns
    /// `snapshot != ULONG_MAX` ("retry only once", b9705d8778e7); the 5.2 release returned True
    /// there (B12, the `retry_forever` fault).
    pub fn grow_retry_once(self) -> bool {
        self.grow_walk() == GrowWalk::MaxOrder
    }

    /// What grow returns after initialising `got` pages of the `need` it wanted.
    pub fn grow_result(self, got: u64, need: u64) -> bool {
        if self == Policy::PostingV2 {
            got >= need
        } else {
            got > 0
        }
    }

    pub fn key_disable(self) -> KeyDisable {
        match self {
            Policy::Eager | Policy::V4_2 | Policy::V4_6 | Policy::V4_13 => KeyDisable::NoKey,
            Policy::PostingV2 => KeyDisable::BeforePasses,
            _ => KeyDisable::AfterPasses,
        }
    }

    pub fn pass_lock(self) -> PassLock {
        match self {
            Policy::V4_17 | Policy::V5_2 => PassLock::WholePass,
            Policy::Eager | Policy::V4_2 | Policy::V4_6 | Policy::V4_13 | Policy::PostingV2 => {
                PassLock::None
            }
            _ => PassLock::Claim,
        }
    }

    /// Whether the per-node pass holds its node's lock (IRQs off) for the whole pass.
    pub fn pass_holds_node_lock(self) -> bool {
        self.pass_lock() == PassLock::WholePass
    }
}

/// `memblock_reserved_memory_within(start_addr, end_addr)` as 4.13–4.16 had it: the whole size of
/// every reserved region that touches `[start_addr, end_addr]` (not clipped to it).
fn reserved_within(reserved: &[Region], start_addr: u64, end_addr: u64) -> u64 {
    reserved
        .iter()
        .filter(|r| r.end >= start_addr && r.start <= end_addr)
        .map(|r| r.end - r.start)
        .sum()
}

/// Edit distance between two names: insertions, deletions, substitutions and swaps of two adjacent
/// characters (the optimal string alignment distance), so that "v4.71" is one edit from "v4.17".
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

pub const POLICY_NAMES: [&str; Policy::ALL.len()] = {
    let mut names = [""; Policy::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = Policy::ALL[i].name();
        i += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The facts that read "from version X on" compare policies: the declaration order (`Ord`) must
    /// be `ALL`'s release order, and the per-policy answers stay what the generation lists said.
    #[test]
    fn release_order_is_all_s_order() {
        assert!(Policy::ALL.windows(2).all(|w| w[0] < w[1]));
        let padata: Vec<_> = Policy::ALL.into_iter().filter(|p| p.padata()).collect();
        assert_eq!(
            padata,
            [
                Policy::V5_8,
                Policy::V5_10,
                Policy::V6_4,
                Policy::V6_11,
                Policy::Rework2025
            ]
        );
        let nofragment: Vec<_> = Policy::ALL.into_iter().filter(|p| p.nofragment()).collect();
        assert_eq!(nofragment[0], Policy::V5_2);
        assert_eq!(nofragment.len(), 7);
    }

    #[test]
    fn unknown_policy_names_every_policy_and_the_closest() {
        // "v4.71" -> "v4.17": one swap ("v4.13" is two substitutions away); "v5.1" -> "v5.10" and "v5.2" are
        // one edit each, and min() takes the smaller name ("v5.10" < "v5.2"); "bogus" is 5 edits from "eager"
        // and at least 4 from any other name: no hint.
        let msg = |n: &str| Policy::parse(n).unwrap_err().to_string();
        assert!(
            msg("v4.71").ends_with("; did you mean \"v4.17\"?"),
            "{}",
            msg("v4.71")
        );
        assert!(
            msg("v5.1").ends_with("; did you mean \"v5.10\"?"),
            "{}",
            msg("v5.1")
        );
        assert!(
            msg("bogus").ends_with("\"rework-2025\"]"),
            "{}",
            msg("bogus")
        );
        assert!(msg("bogus").contains("\"eager\", \"v4.2\""));
        assert_eq!(edit_distance("v4.71", "v4.13"), 2);
        assert_eq!(edit_distance("posting-v3", "posting-v2"), 1);
        assert_eq!(edit_distance("", "v4.2"), 4);
    }

    #[test]
    fn limits() {
        let g = Geometry::default();
        let lim = |p: Policy, spanned| p.early_limit(&g, 0, spanned, &[], false);
        assert_eq!(lim(Policy::V4_2, 1 << 30), Some(524288));
        assert_eq!(lim(Policy::V4_17, 1 << 30), Some(32768));
        assert_eq!(lim(Policy::V4_17, 1000), Some(1000));
        assert_eq!(lim(Policy::Eager, 1 << 30), None);
        // A 1.5 TiB node (review D6): spanned = 402653184 pages, >> 8 = 1572864 (6 GiB).
        assert_eq!(lim(Policy::V4_6, 402653184), Some(1572864));
        assert_eq!(lim(Policy::V4_6, 1 << 20), Some(524288));
        assert!(Policy::parse("v9.9").is_err());
    }

    /// 4.13: node [1 MiB, 64 GiB) = pfns [0x100, 0x1000000); a 256 MiB crashkernel at 128 MiB.
    /// Sized = max(524288, 0xffff00 >> 8 = 65535) = 524288; window [1 MiB, 1 MiB + 2 GiB] holds it,
    /// so LIMIT = 524288 + 65536 = 589824. B4 (the window in pfns-as-bytes, [0x100, 0x80100]) misses it.
    #[test]
    fn reserved_compensation_and_b4() {
        let g = Geometry::default();
        let res = [Region {
            start: 128 << 20,
            end: 384 << 20,
            nid: 0,
        }];
        let spanned = 0x1000000 - 0x100;
        assert_eq!(
            Policy::V4_13.early_limit(&g, 0x100, spanned, &res, false),
            Some(589824)
        );
        assert_eq!(
            Policy::V4_13.early_limit(&g, 0x100, spanned, &res, true),
            Some(524288)
        );
        // A reservation at 4 KiB: the bytes-as-pages sum adds 4096 pages for one 4 KiB page.
        let low = [Region {
            start: 0x1000,
            end: 0x2000,
            nid: 0,
        }];
        assert_eq!(
            Policy::V4_13.early_limit(&g, 0, spanned, &low, true),
            Some(524288 + 4096)
        );
        assert_eq!(
            Policy::V4_13.early_limit(&g, 0, spanned, &low, false),
            Some(524288 + 1)
        );
    }

    #[test]
    fn grow_results_differ() {
        assert!(Policy::V4_17.grow_result(1, 32768));
        assert!(!Policy::PostingV2.grow_result(1, 32768));
        assert!(Policy::PostingV2.grow_result(32768, 32768));
    }

    #[test]
    fn table_is_complete() {
        let names: Vec<&str> = Policy::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, POLICY_NAMES);
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.name()), Ok(p));
            let facts = p.facts();
            assert_eq!(facts[0], ("name", FactValue::Name(p.name())));
            // A policy without deferral has no LIMIT; one that grows has the static key.
            let g = Geometry::default();
            assert_eq!(
                p.defers(),
                p.early_limit(&g, 0, 1 << 20, &[], false).is_some()
            );
            assert!(!p.grows() || p.key_disable() != KeyDisable::NoKey);
        }
    }

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.name()).unwrap(), p);
        }
    }
}
