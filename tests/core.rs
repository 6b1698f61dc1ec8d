//! Integration tests of the core on hand-derived cases (spec numbers, not program output).

use pgdefer::machine::MemoryLine;
use pgdefer::{
    Event, Geometry, Machine, MachineConfig, PageState, Policy, Region, ZoneLimits, ZoneType,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn machine(memory: Vec<Region>, reserved: Vec<Region>, policy: Policy, g: Geometry) -> Machine {
    Machine::new(MachineConfig::new(
        g,
        memory,
        reserved,
        ZoneLimits::default(),
        policy,
    ))
    .unwrap()
}

/// 64-page sections (256 KiB), pageblock order 3, max order 4.
fn small_geometry() -> Geometry {
    Geometry::new(4096, 256 << 10, 3, 4).unwrap()
}

/// One node, memory [0, 1 MiB) = 256 pages = 4 small sections, all in DMA (limit 16 MiB), booted.
fn booted_small(policy: Policy) -> Machine {
    let m = machine(
        vec![Region::new(0, MIB, 0)],
        vec![],
        policy,
        small_geometry(),
    );
    m.boot().unwrap();
    m
}

fn grows(m: &Machine) -> usize {
    m.events()
        .iter()
        .filter(|e| matches!(e.event, Event::Grow { .. }))
        .count()
}

fn free_pages(m: &Machine, zt: ZoneType) -> u64 {
    let zi = m.zone_index(0, zt).unwrap();
    m.zone_counters(0, zi).1
}

/// The acceptance case. Memory [1 MiB, 5 GiB) = pfns [0x100, 0x140000); reserved
/// [16 MiB, 48 MiB) = pfns [0x1000, 0x3000) (8192 pages, in DMA32).
/// Zones (limits 16 MiB = pfn 0x1000, 4 GiB = pfn 0x100000): DMA [0x100, 0x1000) = 3840 pages,
/// DMA32 [0x1000, 0x100000) = 1044480, Normal [0x100000, 0x140000) = 262144.
/// Defer rule (§2.3, LIMIT = 32768): Normal's first pfn 0x100000 is count 1; pfn 0x108000 is count
/// 32769 > 32768 and section aligned -> first_deferred_pfn = 0x108000.
/// Free after memblock_free_all: DMA 3840; DMA32 1044480 - 8192 = 1036288; Normal 0x108000 - 0x100000
/// = 32768. 32768 order-0 allocations empty Normal without growing; the next one fails the zero
/// watermark, grows one section (need = 32768, free range runs to the zone end) -> fdp 0x110000.
/// Late init frees the rest: Normal free = 262144 - 32769 allocated.
#[test]
fn acceptance_case_v4_17() {
    let m = machine(
        vec![Region::new(MIB, 5 * GIB, 0)],
        vec![Region::new(16 * MIB, 48 * MIB, 0)],
        Policy::V4_17,
        Geometry::default(),
    );
    m.boot().unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x108000));
    // memblock_free_all's line: memory [0x100, 0x140000) = 1310464 pages, 8192 of them reserved; the
    // free rest, 1302272, is released but for [0x108000, 0x140000) = 229376 deferred: 1072896.
    let freed: Vec<(u64, u64, u64)> = m
        .events()
        .iter()
        .filter_map(|e| match e.event {
            Event::MemblockFreeAll {
                released,
                reserved,
                deferred,
            } => Some((released, reserved, deferred)),
            _ => None,
        })
        .collect();
    assert_eq!(freed, vec![(1072896, 8192, 229376)]);
    assert_eq!(free_pages(&m, ZoneType::Dma), 3840);
    assert_eq!(free_pages(&m, ZoneType::Dma32), 1036288);
    assert_eq!(free_pages(&m, ZoneType::Normal), 32768);
    // v4.17 prints `Memory: X/Y available` right after memblock_free_all: available = the free pages
    // of all zones = the released 3840 + 1036288 + 32768 = 1072896; physpages = the present pages,
    // reserved ones included: all of memory [0x100, 0x140000) = 1310464.
    let line = MemoryLine {
        at: "memblock_free_all",
        available: 1072896,
        physpages: 1310464,
    };
    assert_eq!(m.memory_line(), Some(line));
    for _ in 0..32768 {
        let pfn = m
            .alloc_pages(0, Some(0), Some(ZoneType::Normal), 0)
            .unwrap();
        assert!((0x100000..0x108000).contains(&pfn));
    }
    assert_eq!(grows(&m), 0);
    let pfn = m
        .alloc_pages(0, Some(0), Some(ZoneType::Normal), 0)
        .unwrap();
    assert!((0x108000..0x110000).contains(&pfn));
    assert_eq!(grows(&m), 1);
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x110000));
    assert!(m.check().is_empty(), "{:?}", m.check());
    m.page_alloc_init_late(true).unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), None);
    assert!(!m.key.enabled());
    assert_eq!(free_pages(&m, ZoneType::Normal), 262144 - 32769);
    // Printed once, early: the passes do not print it again before 6.11.
    assert_eq!(m.memory_line(), Some(line));
    for r in &m.layout.memory {
        for pfn in r.start..r.end {
            assert_eq!(
                m.pages.flags(m.pages.idx(pfn).unwrap()).init_count(),
                1,
                "pfn {pfn:#x}"
            );
        }
    }
    assert!(m.check().is_empty(), "{:?}", m.check());
}

/// Small geometry: 64-page sections, max order 4, pageblock order 3. One node, memory [0, 1 MiB)
/// = 256 pages = 4 sections, all in DMA (limit 16 MiB) -> the last zone is DMA.
/// LIMIT = min(64, 256) = 64: pfn 64 is count 65 and section aligned -> fdp = 64.
#[test]
fn small_geometry_grows_one_section_at_a_time() {
    let m = booted_small(Policy::V4_17);
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(64));
    for _ in 0..64 {
        m.alloc_pages(0, None, None, 0).unwrap();
    }
    m.alloc_pages(0, None, None, 0).unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(128));
    // empty the zone again; then an order-4 request (16 pages) fails the zero watermark and grows
    for _ in 0..63 {
        m.alloc_pages(0, None, None, 0).unwrap();
    }
    m.alloc_pages(4, None, None, 0).unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(192));
    assert!(m.check().is_empty(), "{:?}", m.check());
    m.page_alloc_init_late(false).unwrap();
    assert!(m.check().is_empty(), "{:?}", m.check());
}

#[test]
fn eager_defers_nothing_and_v4_2_never_grows() {
    let m = booted_small(Policy::Eager);
    assert_eq!(m.first_deferred_pfn(0).unwrap(), None);
    assert!((0..256).all(|i| m.pages.state(i) == PageState::Free));
    // v4.2: 2 GiB prefix = 524288 pages; a 3 GiB Normal zone defers its last GiB.
    let m = machine(
        vec![Region::new(4 * GIB, 7 * GIB, 0)],
        vec![],
        Policy::V4_2,
        Geometry::default(),
    );
    m.boot().unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x100000 + 524288));
    for _ in 0..512 {
        m.alloc_pages(10, None, None, 0).unwrap();
    }
    assert!(
        m.alloc_pages(0, None, None, 0).is_err(),
        "v4.2 has no on-demand growth"
    );
    assert_eq!(grows(&m), 0);
    m.page_alloc_init_late(true).unwrap();
    m.alloc_pages(0, None, None, 0).unwrap();
    assert!(m.check().is_empty(), "{:?}", m.check());
}

/// The checker itself: each corruption is reported under its invariant's name.
#[test]
fn check_reports_each_kind_of_corruption() {
    use pgdefer::page::{Flags, MT_UNSET};
    let g = small_geometry();
    // 4 sections of memory, the last one only 40 pages: pfns [232, 256) are holes. fdp = 64.
    let fresh = || {
        let m = machine(
            vec![Region::new(0, (192 + 40) * 4096, 0)],
            vec![],
            Policy::V4_17,
            g,
        );
        m.boot().unwrap();
        assert!(m.check().is_empty());
        m
    };
    let idx = |m: &Machine, pfn: u64| m.pages.idx(pfn).unwrap();
    let set_state = move |m: &Machine, pfn: u64, state: PageState| {
        let i = idx(m, pfn);
        m.pages.set_flags(i, m.pages.flags(i).with_state(state));
    };
    // `__init_single_page` (again) in DMA, then `state`
    let reinit = move |m: &Machine, pfn: u64, state: PageState| {
        let i = idx(m, pfn);
        let f = m.pages.flags(i).initialised(ZoneType::Dma);
        m.pages.set_flags(i, f.with_state(state));
    };
    type Corruption = Box<dyn Fn(&Machine)>;
    let cases: Vec<(&str, Corruption)> = vec![
        (
            "I1: pfn 0x5 initialised 2 times",
            Box::new(move |m: &Machine| reinit(m, 5, PageState::Free)),
        ),
        (
            "I2: pfn 0x5 is uninitialised but not deferred",
            Box::new(move |m: &Machine| m.pages.set_flags(idx(m, 5), Flags(0))),
        ),
        (
            "I2: pfn 0x50 at/above first_deferred_pfn",
            Box::new(move |m: &Machine| reinit(m, 0x50, PageState::Reserved)),
        ),
        (
            "hole pfn 0xf0",
            Box::new(move |m: &Machine| set_state(m, 0xf0, PageState::Free)),
        ),
        (
            "B-I3: free pfn 0x8",
            Box::new(move |m: &Machine| {
                m.pages.pageblock_mt[1].store(MT_UNSET, std::sync::atomic::Ordering::Relaxed)
            }),
        ),
        (
            "B-I4: node 0 zone DMA has 63 FREE pages",
            Box::new(move |m: &Machine| set_state(m, 7, PageState::Allocated)),
        ),
        (
            "B-I1: node 0 zone DMA list 4 holds pfn 0x0",
            Box::new(move |m: &Machine| m.pages.set_buddy_order(idx(m, 0), Some(2))),
        ),
    ];
    for (want, corrupt) in cases {
        let m = fresh();
        corrupt(&m);
        let found = m.check();
        assert!(
            found.iter().any(|p| p.contains(want)),
            "wanted {want:?}, got {found:?}"
        );
    }
    // I4 after late init: first_deferred_pfn must be ULONG_MAX for good.
    let m = fresh();
    m.page_alloc_init_late(false).unwrap();
    assert!(m.check().is_empty());
    m.nodes[0].fdp.store(Some(100));
    assert!(
        m.check()
            .iter()
            .any(|p| p.starts_with("I4: node 0 first_deferred_pfn is 0x64")),
        "{:?}",
        m.check()
    );
}

/// Review D1 (defer rule counts hole pfns of present sections, 4.2–5.7): node 0 memory [1 MiB, 3 GiB),
/// [4 GiB, 4 GiB + 64 MiB), [4 GiB + 128 MiB, 8 GiB). Normal starts at pfn 0x100000; its first
/// section [0x100000, 0x108000) holds 0x4000 memory pfns and 0x4000 hole pfns. 4.17 walks the zone
/// span: pfn 0x108000 is count 0x8001 > 32768 and section aligned -> fdp 0x108000 (early Normal
/// pages: the 16384 memory pfns). Counting memory only (the 5.8+ rule) would reach count 32769 at
/// 0x10c000, not aligned, and cut at 0x110000.
#[test]
fn v4_17_counts_holes_of_present_sections() {
    for p in [Policy::V4_17, Policy::PostingV2] {
        let m = machine(
            vec![
                Region::new(MIB, 3 * GIB, 0),
                Region::new(4 * GIB, 4 * GIB + 64 * MIB, 0),
                Region::new(4 * GIB + 128 * MIB, 8 * GIB, 0),
            ],
            vec![],
            p,
            Geometry::default(),
        );
        m.boot().unwrap();
        assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x108000), "{p:?}");
        assert_eq!(free_pages(&m, ZoneType::Normal), 0x4000);
        assert!(m.check().is_empty(), "{:?}", m.check());
    }
}

/// v4.6 and v4.13 sizing on a real boot (small nodes: `spanned >> 8` is below 2 GiB, so the prefix is
/// 2 GiB = 524288 pages). Node [4 GiB, 7 GiB) = pfns [0x100000, 0x1c0000), all Normal.
/// v4.6: LIMIT 524288 -> fdp 0x180000. v4.13 adds the 16 MiB reserved at 4 GiB + 1 GiB (inside the
/// window [4 GiB, 6 GiB]): LIMIT 524288 + 4096; pfn 0x180000 is count 524289 -> not over; the next
/// section-aligned pfn 0x188000 is count 557057 > 528384 -> fdp 0x188000. B4 (window [0x100000,
/// 0x180000] in bytes, which the reservation at 5 GiB misses) -> 0x180000 again.
#[test]
fn v4_6_and_v4_13_prefix() {
    let mem = vec![Region::new(4 * GIB, 7 * GIB, 0)];
    let res = vec![Region::new(5 * GIB, 5 * GIB + 16 * MIB, 0)];
    let boot = |p: Policy, b4: bool| {
        let mut cfg = MachineConfig::new(
            Geometry::default(),
            mem.clone(),
            res.clone(),
            ZoneLimits::default(),
            p,
        );
        cfg.faults.bytes_as_pages = b4;
        let m = Machine::new(cfg).unwrap();
        m.boot().unwrap();
        assert!(m.check().is_empty(), "{:?}", m.check());
        assert!(!m.key.enabled(), "{p:?} has no on-demand growth");
        m.first_deferred_pfn(0).unwrap()
    };
    assert_eq!(boot(Policy::V4_6, false), Some(0x180000));
    assert_eq!(boot(Policy::V4_13, false), Some(0x188000));
    assert_eq!(boot(Policy::V4_13, true), Some(0x180000));
}

/// Issue 8 acceptance 1 (review D2), through the core. Node 0 memory [1 MiB, 3 GiB) + [4 GiB, 12 GiB);
/// reserved pfns [0x10fff6, 0x11000a) (20 pages across the section boundary 0x110000). Normal =
/// [0x100000, 0x300000); its first section is all memory -> fdp 0x108000, 32768 free Normal pages.
/// Exhaust them, then one order-0 allocation grows once (need = 32768). Free ranges from fdp:
/// A = [0x108000, 0x10fff6) (32758 pages), B = [0x11000a, 0x300000).
/// * v4.17 (§3.2 pass 1): from 0x108000, t = ALIGN(0x108000 + PPS) = 0x110000, clipped to A's end:
///   32758 pages, range done, got < need; B from 0x11000a: t = ALIGN(0x11800a) = 0x120000: 0xfff6 =
///   65526 pages -> got 98284, fdp 0x120000.
/// * v5.2+ (§5.7 loop): MAX_ORDER steps of 1024 inside A's section continue; the step from 0x10fc00
///   inits [0x10fc00, 0x10fff6) and leaves spfn at B's start 0x11000a (another section) with got =
///   32758 < need; steps inside section 0x110000 continue until the step from 0x117c00 ends at
///   0x118000 (a crossing) with got = 32758 + 0x7ff6 = 65516 >= need -> fdp 0x118000.
#[test]
fn acceptance_one_grow_per_generation() {
    for (p, pages, fdp) in [
        (Policy::V4_17, 98284, 0x120000),
        (Policy::V5_2, 65516, 0x118000),
        (Policy::V5_7, 65516, 0x118000),
        (Policy::V5_8, 65516, 0x118000),
        (Policy::V5_10, 65516, 0x118000),
        (Policy::V6_4, 65516, 0x118000),
        (Policy::V6_11, 65516, 0x118000),
        // 2025 (§5.12): chunk [0x108000, 0x110000) = A = 32758 < need; chunk [0x110000, 0x118000) =
        // [0x11000a, 0x118000) = 32758 -> 65516 >= need; fdp = 0x118000 (section aligned).
        (Policy::Rework2025, 65516, 0x118000),
    ] {
        let m = machine(
            vec![
                Region::new(MIB, 3 * GIB, 0),
                Region::new(4 * GIB, 12 * GIB, 0),
            ],
            vec![Region::new(0x10fff6 << 12, 0x11000a << 12, 0)],
            p,
            Geometry::default(),
        );
        m.boot().unwrap();
        assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x108000));
        for _ in 0..32768 {
            m.alloc_pages(0, Some(0), Some(ZoneType::Normal), 0)
                .unwrap();
        }
        assert_eq!(grows(&m), 0);
        let pfn = m
            .alloc_pages(0, Some(0), Some(ZoneType::Normal), 0)
            .unwrap();
        assert!((0x108000..fdp).contains(&pfn), "{p:?}: {pfn:#x}");
        let grown: Vec<(u64, Option<u64>, bool)> = m
            .events()
            .iter()
            .filter_map(|e| match e.event {
                Event::Grow {
                    pages,
                    first_deferred_pfn,
                    result,
                    ..
                } => Some((pages, first_deferred_pfn, result)),
                _ => None,
            })
            .collect();
        assert_eq!(grown, vec![(pages, Some(fdp), true)], "{p:?}");
        assert!(m.check().is_empty(), "{p:?}: {:?}", m.check());
        m.page_alloc_init_late(false).unwrap();
        assert!(m.check().is_empty(), "{p:?}: {:?}", m.check());
        // Everything free was released exactly once: Normal has 0x200000 - 20 memory pages free but
        // the 32769 allocated ones.
        assert_eq!(
            free_pages(&m, ZoneType::Normal),
            0x200000 - 20 - 32769,
            "{p:?}"
        );
    }
}

/// B12: a deferred zone whose tail is all reserved. Node [4 GiB, 4 GiB + 256 MiB) (pfns
/// [0x100000, 0x110000), one zone Normal; LIMIT = min(32768, 65536) -> fdp 0x108000); the second
/// section reserved entirely. 5.2+ grow finds no free range after 0x108000: it sets fdp := ULONG_MAX
/// and returns True once ("retry only once"), then False: the allocation fails cleanly. The 5.2
/// release (retry_forever) returns True again: the endless retry is recorded as a violation and the
/// hook takes it as False instead of spinning.
#[test]
fn retry_forever_only_once() {
    for b12 in [false, true] {
        let mut cfg = MachineConfig::new(
            Geometry::default(),
            vec![Region::new(4 * GIB, 4 * GIB + 256 * MIB, 0)],
            vec![Region::new(4 * GIB + 128 * MIB, 4 * GIB + 256 * MIB, 0)],
            ZoneLimits::default(),
            Policy::V5_2,
        );
        cfg.faults.retry_forever = b12;
        let m = Machine::new(cfg).unwrap();
        m.boot().unwrap();
        assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x108000));
        for _ in 0..32 {
            m.alloc_pages(10, None, None, 0).unwrap();
        }
        let r = m.alloc_pages(0, None, Some(ZoneType::Normal), 0);
        let results: Vec<bool> = m
            .events()
            .iter()
            .filter_map(|e| match e.event {
                Event::Grow {
                    result,
                    pages: 0,
                    first_deferred_pfn: None,
                    ..
                } => Some(result),
                _ => None,
            })
            .collect();
        assert!(matches!(r, Err(pgdefer::Error::OutOfMemory(_))), "{r:?}");
        if b12 {
            // The second True is reported and taken as False by the hook (docs/model.md §11.3); the
            // pass without ALLOC_NOFRAGMENT (5.0+) asks once more and gets B12's True again.
            assert_eq!(results, vec![true, true, true]);
            assert!(
                m.violations().iter().any(|v| v.starts_with("B12")),
                "{:?}",
                m.violations()
            );
        } else {
            // True once, then False from hook 2; then get_page_from_freelist's second pass without
            // ALLOC_NOFRAGMENT (5.0+: a one-node Normal request) asks hook 1 again: False.
            assert_eq!(results, vec![true, false, false]);
            assert!(m.violations().is_empty());
        }
    }
}

/// Review D3 (free-list placement of boot frees). [1 MiB, 3 GiB) + [4 GiB, 12 GiB): memblock_free_all
/// releases Normal's early section [0x100000, 0x108000) as 32 order-10 blocks, ascending. Before 5.10
/// `__free_one_page` links order MAX_ORDER-1 (our max_order 10) blocks at the head, so the head is
/// the last one freed, 0x107c00, and the first order-0 allocation splits it: pfn 0x107c00. 5.10+
/// (FPI_TO_TAIL) keep release order: the head is 0x100000 (buddy.rs tests the rule itself).
#[test]
fn boot_free_placement_d3() {
    for (p, first) in [
        (Policy::V4_17, 0x107c00),
        (Policy::V5_8, 0x107c00),
        (Policy::V5_10, 0x100000),
    ] {
        let m = machine(
            vec![
                Region::new(MIB, 3 * GIB, 0),
                Region::new(4 * GIB, 12 * GIB, 0),
            ],
            vec![],
            p,
            Geometry::default(),
        );
        m.boot().unwrap();
        let zi = m.zone_index(0, ZoneType::Normal).unwrap();
        assert_eq!(m.free_list(0, zi, 10, None).unwrap().len(), 32);
        assert_eq!(m.alloc_pages(0, Some(0), None, 0).unwrap(), first, "{p:?}");
        assert!(m.check().is_empty(), "{p:?}: {:?}", m.check());
    }
}

/// 6.4+ frees whole MAX_ORDER blocks from the pass (spec §5.11) where 5.10 frees pageblocks: a
/// difference of cost, not of end state (the buddy merges two free order-9 halves into the same
/// order-10 block, linked at the tail in the same ascending order). [4 GiB, 4 GiB + 256 MiB), fdp
/// 0x108000, reserved pfn 0x108000: the deferred section's first MAX_ORDER block is partial (freed
/// page by page from 0x108001 in both), the other 31 are whole. Normal ends with 0x10000 - 1 free
/// pages, 32 + 31 order-10 blocks.
#[test]
fn v6_4_max_order_frees_reach_the_same_buddy_state() {
    for p in [Policy::V5_10, Policy::V6_4] {
        let m = machine(
            vec![Region::new(4 * GIB, 4 * GIB + 256 * MIB, 0)],
            vec![Region::new(
                4 * GIB + 128 * MIB,
                4 * GIB + 128 * MIB + 4096,
                0,
            )],
            p,
            Geometry::default(),
        );
        m.boot().unwrap();
        m.page_alloc_init_late(false).unwrap();
        assert_eq!(free_pages(&m, ZoneType::Normal), 0x10000 - 1, "{p:?}");
        let zi = m.zone_index(0, ZoneType::Normal).unwrap();
        assert_eq!(
            m.free_list(0, zi, 10, None).unwrap().len(),
            32 + 31,
            "{p:?}"
        );
        assert!(m.check().is_empty(), "{p:?}: {:?}", m.check());
    }
}

/// The allocation ledger (issue 15): check() holds every ALLOCATED page against the blocks handed
/// to callers. One order-2 allocation = 4 pages; dropping it from the ledger while it stays ALLOCATED
/// is exactly a caller losing it; a ledger entry of the wrong order is not an allocated block.
#[test]
fn check_reports_an_allocated_page_that_no_caller_holds() {
    let m = booted_small(Policy::V4_17);
    let pfn = m.alloc_pages(2, None, None, 0).unwrap();
    assert_eq!(m.ledger.live(), vec![(pfn, 2)]);
    assert!(m.check().is_empty(), "{:?}", m.check());
    assert_eq!(m.ledger.returned(pfn), Some(2)); // the caller loses the block
    let bad = m.check();
    assert!(
        bad.iter()
            .any(|b| b.contains("4 ALLOCATED page(s) belong to no live allocation")
                && b.contains(&format!("pfn {pfn:#x}"))),
        "{bad:?}"
    );
    m.ledger.received(pfn, 1);
    let bad = m.check();
    assert!(
        bad.iter()
            .any(|b| b.contains(&format!("order-1 allocation at pfn {pfn:#x} is not an allocated block"))),
        "{bad:?}"
    );
    m.ledger.returned(pfn);
    m.ledger.received(pfn, 2);
    m.free_pages(pfn, 2, 0).unwrap();
    assert!(m.ledger.live().is_empty());
    assert!(m.check().is_empty(), "{:?}", m.check());
}

/// Cross-thread deadlock detection (issue 15): a grow:locked callback (CPU 0 holds the node lock)
/// runs a workload whose stream (CPU 1, a thread the machine starts and this one joins) must grow the
/// same node. The stream would spin forever on a lock its joiner holds: the wait-for graph gives
/// its allocation up with a lockdep report, and everything else completes.
#[test]
fn a_stream_spinning_on_the_lock_of_the_thread_joining_it_is_a_deadlock_not_a_hang() {
    use pgdefer::workload::Stream;
    use std::sync::{Arc, Mutex};
    let g = small_geometry();
    let mut cfg = MachineConfig::new(
        g,
        vec![Region::new(0, 2 * MIB, 0)],
        vec![],
        ZoneLimits::default(),
        Policy::V4_17,
    );
    cfg.cpus = 2;
    let m = Machine::new(cfg).unwrap();
    m.boot().unwrap();
    for _ in 0..64 {
        m.alloc_pages(0, None, None, 0).unwrap(); // the early section: the next allocation grows
    }
    let failures = Arc::new(Mutex::new(None));
    let seen = failures.clone();
    m.at_point(
        "grow:locked",
        None,
        true,
        Arc::new(move |m: &Machine, _| {
            let stream = Stream {
                cpu: 1,
                count: 1,
                orders: vec![0],
                node: None,
                zone: None,
                free_percent: 0,
            };
            let r = m.run_workload(&[stream], 1, None).unwrap();
            *seen.lock().unwrap() = Some(r.streams[0].failures);
        }),
    )
    .unwrap();
    let pfn = m.alloc_pages(0, None, None, 0).unwrap();
    assert!((64..128).contains(&pfn), "the caller's own grow went on");
    assert_eq!(*failures.lock().unwrap(), Some(1));
    let deadlocks: Vec<_> = m
        .events()
        .into_iter()
        .filter(|e| matches!(&e.event, Event::Lockdep { cpu: 1, .. }))
        .collect();
    assert_eq!(deadlocks.len(), 1);
    assert!(m.check().is_empty(), "{:?}", m.check());
}

/// Nodes that meet inside a MAX_ORDER block (issue 15 finding 7). Geometry: 64-page sections,
/// MAX_ORDER 4 (16-page blocks), pageblock order 3. Node 0 = pfns [0, 0x44), node 1 = [0x44, 0x200),
/// all DMA: the block [0x40, 0x50) holds node 0's 0x40-0x43 and node 1's 0x44-0x4f.
/// `memblock_free_all` cuts each node's free range into naturally aligned chunks: node 0 gives four
/// order-4 blocks [0, 0x40) and the order-2 block 0x40; node 1 the order-2 block 0x44, the order-3
/// block 0x48 and order-4 blocks from 0x50 to 0x200 (27). A free never merges with a buddy of
/// another node (`page_is_buddy` compares the zone id, which includes the node), so these stay as cut.
fn cross_node_block(policy: Policy) -> Machine {
    let g = small_geometry();
    machine(
        vec![
            Region::new(0, 0x44 * 4096, 0),
            Region::new(0x44 * 4096, 0x200 * 4096, 1),
        ],
        vec![],
        policy,
        g,
    )
}

fn lists(m: &Machine, nid: u32) -> Vec<Vec<u64>> {
    let ni = m.node_index(nid).unwrap();
    let zi = m.zone_index(ni, ZoneType::Dma).unwrap();
    (0..=4).map(|o| m.free_list(ni, zi, o, None).unwrap()).collect()
}

#[test]
fn a_free_never_merges_with_a_buddy_of_another_node() {
    let m = cross_node_block(Policy::Eager);
    m.boot().unwrap();
    let (n0, n1) = (lists(&m, 0), lists(&m, 1));
    assert_eq!(n0[2], vec![0x40]);
    assert_eq!(n0[4].len(), 4);
    assert_eq!((n1[2].clone(), n1[3].clone(), n1[4].len()), (vec![0x44], vec![0x48], 27));
    assert!(m.check().is_empty(), "{:?}", m.check());
    // Take node 1's order-2 block and give it back: its buddy 0x40 is free, order 2, same zone, but
    // node 0's, so it must stay where it was. (A MOVABLE request: every boot block is MOVABLE, so it
    // takes the smallest one, 0x44; an UNMOVABLE one would steal the largest, 0x50.)
    let pfn = m
        .alloc_pages_mt(
            2,
            Some(1),
            Some(ZoneType::Dma),
            pgdefer::MigrateType::Movable,
            0,
        )
        .unwrap();
    assert_eq!(pfn, 0x44);
    m.free_pages(pfn, 2, 0).unwrap();
    assert_eq!(lists(&m, 0)[2], vec![0x40]);
    assert_eq!(lists(&m, 1)[2], vec![0x44]);
    assert!(m.check().is_empty(), "{:?}", m.check());
}

/// v4.17 on the same map: node 0 (68 pages) defers from pfn 0x40 (the first section-aligned pfn whose
/// count, 65, exceeds min(PAGES_PER_SECTION, spanned) = 64); node 1's early pages start at 0x44.
/// Freeing node 1's 0x44 (order 2) and 0x48 (order 3) meets the uninitialised buddy 0x40 of node 0:
/// the kernel hazard, recorded as B-I2 twice; the pageblock [0x40, 0x48) has no migratetype yet while
/// 0x44-0x47 are free (B-I3). After late init node 0's pass set it and freed 0x40 without merging.
#[test]
fn nodes_meeting_inside_a_block_expose_the_uninitialised_buddy_hazard_and_nothing_else() {
    let m = cross_node_block(Policy::V4_17);
    m.boot().unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x40));
    let b_i2 = vec![
        "B-I2: freeing pfn 0x44 order 2 found its buddy pfn 0x40 uninitialised; not merged".to_string(),
        "B-I2: freeing pfn 0x48 order 3 found its buddy pfn 0x40 uninitialised; not merged".to_string(),
    ];
    assert_eq!(m.violations(), b_i2);
    let problems = m.check();
    let b_i3: Vec<&String> = problems.iter().filter(|p| p.starts_with("B-I3")).collect();
    assert_eq!(b_i3.len(), 4, "{problems:?}");
    assert_eq!(problems.len(), 6, "{problems:?}");
    m.page_alloc_init_late(true).unwrap();
    assert_eq!(m.check(), b_i2);
    assert_eq!(lists(&m, 0)[2], vec![0x40]);
    assert_eq!(lists(&m, 1)[2], vec![0x44]);
    assert_eq!(lists(&m, 1)[3], vec![0x48]);
}

/// `__free_one_page` at the level of one free area (issue 15, mutation testing): a free block merges
/// only with a FREE buddy that heads a block of the same order in the same zone and node, and the
/// pre-5.10 tail rule looks for the same kind of order-(k+1) buddy. One 64-page section, MAX_ORDER 4;
/// the pages are given zones and nodes by hand, as no topology would (zone limits are MAX_ORDER aligned).
mod free_one_page {
    use pgdefer::buddy::{FreeArea, ListEnd};
    use pgdefer::migratetype::Fallback;
    use pgdefer::page::{InitBy, PageArray};
    use pgdefer::ZoneType;

    use super::small_geometry;

    fn pages(runs: &[(usize, usize, ZoneType, u16)]) -> PageArray {
        let pa = PageArray::new(small_geometry(), &[(0, 1)]);
        for &(i, n, zone, nid) in runs {
            pa.init_range(i, n, zone, nid, InitBy::Early);
        }
        pa
    }

    type Runs = Vec<(usize, usize, ZoneType, u16)>;

    /// The pages of `runs` and a free area (max order 4, pageblock order 3) after freeing each
    /// `(index, order)` of `blocks` in turn at `end`.
    fn freed(
        runs: &[(usize, usize, ZoneType, u16)],
        blocks: &[(usize, u32)],
        end: ListEnd,
    ) -> (PageArray, FreeArea) {
        let pa = pages(runs);
        let mut fa = FreeArea::new(4, 3, Fallback::MoveTail);
        for &(i, order) in blocks {
            fa.free(&pa, i, order, end).unwrap();
        }
        (pa, fa)
    }

    /// Pages [0, 64) of one zone and one node (true), or with a zone or a node boundary at pfn 4.
    fn one_zone_and_node_or_split_at_4() -> [(Runs, bool); 3] {
        use ZoneType::{Dma, Normal};
        [
            (vec![(0, 64, Normal, 0)], true),
            (vec![(0, 4, Dma, 0), (4, 60, Normal, 0)], false),
            (vec![(0, 4, Normal, 0), (4, 60, Normal, 1)], false),
        ]
    }

    /// [0, 4) and [4, 8) are free order-2 blocks; they may merge into the order-3 block 0 only if
    /// they are in one zone and one node.
    #[test]
    fn no_merge_across_zones_or_nodes() {
        for (runs, merges) in one_zone_and_node_or_split_at_4() {
            let (_, fa) = freed(&runs, &[(0, 2), (4, 2)], ListEnd::Head);
            let want = if merges { vec![0, 0, 0, 1, 0] } else { vec![0, 0, 2, 0, 0] };
            assert_eq!(fa.nr_free, want, "{runs:?}");
            assert_eq!(fa.free_pages, 8);
        }
    }

    /// Freeing [0, 2) at order 1: its buddy 2 is FREE but heads an order-0 block (3 is still in use):
    /// not a buddy of order 1, no merge.
    #[test]
    fn no_merge_with_a_free_buddy_of_another_order() {
        let (pa, fa) = freed(&[(0, 64, ZoneType::Normal, 0)], &[(2, 0), (0, 1)], ListEnd::Head);
        assert_eq!(fa.nr_free, vec![1, 1, 0, 0, 0]);
        assert_eq!((fa.list(&pa, 0), fa.list(&pa, 1)), (vec![2], vec![0]));
    }

    /// Pre-5.10 placement: [0, 2) freed at order 1 goes to the tail only if the order-2 buddy of
    /// [0, 4), block 4, is a free order-2 head of the same zone and node; else to the head. [16, 18)
    /// (nothing free around it) is freed first, so "tail" reads [16, 0] and "head" [0, 16].
    #[test]
    fn merge_likely_looks_for_a_buddy_of_the_same_zone_and_node() {
        for (runs, tail) in one_zone_and_node_or_split_at_4() {
            let (pa, fa) = freed(&runs, &[(4, 2), (16, 1), (0, 1)], ListEnd::MergeLikely);
            let want = if tail { vec![16, 0] } else { vec![0, 16] };
            assert_eq!(fa.list(&pa, 1), want, "{runs:?}");
        }
    }

    /// The tail rule only looks below MAX_ORDER - 1 (`ListEnd::MergeLikely`: tail only if k < max_order - 1):
    /// an order-3 block (max_order 4) goes to the head even though the order-4 block next to it, 16,
    /// is a free order-4 head. 40 (order 3, nothing free near it) is freed first, so "head" reads [0, 40].
    #[test]
    fn merge_likely_never_looks_past_max_order() {
        // 0's buddy 8 is in use: no merge
        let blocks = [(16, 4), (40, 3), (0, 3)];
        let (pa, fa) = freed(&[(0, 64, ZoneType::Normal, 0)], &blocks, ListEnd::MergeLikely);
        assert_eq!(fa.list(&pa, 3), vec![0, 40]);
        assert_eq!(fa.list(&pa, 4), vec![16]);
    }

    /// The order-(k+1) buddy the tail rule looks at is the buddy of the order-(k+1) block holding the
    /// freed one, whichever half that is, and must head a free block of order k+1. Freeing [4, 6)
    /// (buddy 6 in use): its order-2 block [4, 8) has the buddy 0. Freeing [2, 4) (buddy 0 in use): [0, 4)
    /// has the buddy 4. Freeing [0, 2) next to a free order-0 block at 4: not an order-2 head: head.
    /// [16, 18) is freed first each time (to the head, nothing free near it), so "tail" is [16, x].
    #[test]
    fn merge_likely_finds_the_buddy_of_the_parent_block() {
        for (first, first_order, last, tail) in [(0, 2, 4, true), (4, 2, 2, true), (4, 0, 0, false)] {
            let blocks = [(first, first_order), (16, 1), (last, 1)];
            let (pa, fa) = freed(&[(0, 64, ZoneType::Normal, 0)], &blocks, ListEnd::MergeLikely);
            let want = if tail { vec![16, last] } else { vec![last, 16] };
            assert_eq!(fa.list(&pa, 1), want, "freed {last} after {first}/{first_order}");
        }
    }

    /// The zero-watermark check: 4 free pages as four order-0 blocks do not satisfy an order-2
    /// request (no block of order >= 2), one order-2 block does; an empty area satisfies nothing.
    #[test]
    fn watermark_needs_a_block_of_the_order() {
        let pa = pages(&[(0, 64, ZoneType::Normal, 0)]);
        let mut fa = FreeArea::new(4, 3, Fallback::MoveTail);
        assert!(!fa.watermark_ok(0));
        for i in [0, 2, 4, 6] {
            fa.free(&pa, i, 0, ListEnd::Head).unwrap(); // buddies 1, 3, 5, 7 are in use: no merge
        }
        assert_eq!(fa.free_pages, 4);
        assert!(fa.watermark_ok(0) && !fa.watermark_ok(2));
        fa.free(&pa, 8, 2, ListEnd::Head).unwrap();
        assert!(fa.watermark_ok(2) && !fa.watermark_ok(3));
    }
}
