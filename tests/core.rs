//! Integration tests of the core on hand-derived cases (spec numbers, not program output).

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

fn region(start: u64, end: u64, nid: u32) -> Region {
    Region { start, end, nid }
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
        vec![region(MIB, 5 * GIB, 0)],
        vec![region(16 * MIB, 48 * MIB, 0)],
        Policy::V4_17,
        Geometry::default(),
    );
    m.boot().unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), Some(0x108000));
    assert_eq!(free_pages(&m, ZoneType::Dma), 3840);
    assert_eq!(free_pages(&m, ZoneType::Dma32), 1036288);
    assert_eq!(free_pages(&m, ZoneType::Normal), 32768);
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
    let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap();
    let m = machine(vec![region(0, MIB, 0)], vec![], Policy::V4_17, g);
    m.boot().unwrap();
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
    let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap();
    let m = machine(vec![region(0, MIB, 0)], vec![], Policy::Eager, g);
    m.boot().unwrap();
    assert_eq!(m.first_deferred_pfn(0).unwrap(), None);
    assert!((0..256).all(|i| m.pages.state(i) == PageState::Free));
    // v4.2: 2 GiB prefix = 524288 pages; a 3 GiB Normal zone defers its last GiB.
    let m = machine(
        vec![region(4 * GIB, 7 * GIB, 0)],
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
    let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap(); // 64-page sections, max order 4
                                                           // 4 sections of memory, the last one only 40 pages: pfns [232, 256) are holes. fdp = 64.
    let fresh = || {
        let m = machine(
            vec![region(0, (192 + 40) * 4096, 0)],
            vec![],
            Policy::V4_17,
            g,
        );
        m.boot().unwrap();
        assert!(m.check().is_empty());
        m
    };
    let idx = |m: &Machine, pfn: u64| m.pages.idx(pfn).unwrap();
    type Corruption = Box<dyn Fn(&Machine)>;
    let cases: Vec<(&str, Corruption)> = vec![
        (
            "I1: pfn 0x5 initialised 2 times",
            Box::new(move |m: &Machine| {
                let i = idx(m, 5);
                m.pages.set_flags(
                    i,
                    m.pages
                        .flags(i)
                        .initialised(ZoneType::Dma)
                        .with_state(PageState::Free),
                );
            }),
        ),
        (
            "I2: pfn 0x5 is uninitialised but not deferred",
            Box::new(move |m: &Machine| m.pages.set_flags(idx(m, 5), Flags(0))),
        ),
        (
            "I2: pfn 0x50 at/above first_deferred_pfn",
            Box::new(move |m: &Machine| {
                let i = idx(m, 0x50);
                m.pages.set_flags(
                    i,
                    m.pages
                        .flags(i)
                        .initialised(ZoneType::Dma)
                        .with_state(PageState::Reserved),
                );
            }),
        ),
        (
            "hole pfn 0xf0",
            Box::new(move |m: &Machine| {
                let i = idx(m, 0xf0);
                m.pages
                    .set_flags(i, m.pages.flags(i).with_state(PageState::Free));
            }),
        ),
        (
            "B-I3: free pfn 0x8",
            Box::new(move |m: &Machine| {
                m.pages.pageblock_mt[1].store(MT_UNSET, std::sync::atomic::Ordering::Relaxed)
            }),
        ),
        (
            "B-I4: node 0 zone DMA has 63 FREE pages",
            Box::new(move |m: &Machine| {
                let i = idx(m, 7);
                m.pages
                    .set_flags(i, m.pages.flags(i).with_state(PageState::Allocated));
            }),
        ),
        (
            "B-I1: node 0 zone DMA list 4 holds pfn 0x0",
            Box::new(move |m: &Machine| m.pages.set_head_order(idx(m, 0), Some(2))),
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
