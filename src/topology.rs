//! Nodes and zones as `free_area_init` sizes them (spec §2.2), and which sparsemem sections have a memmap.

use crate::error::{Error, Result};
use crate::geometry::Geometry;
use crate::memblock::{Memblock, PfnRange, Region};

/// x86-64 with 5-level paging and arm64 with 52-bit PAs: the top of physical memory.
pub const MAX_PHYSMEM_BITS: u32 = 52;

/// Zone types in index order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZoneType {
    Dma = 0,
    Dma32 = 1,
    Normal = 2,
    Movable = 3,
}

pub const ZONE_TYPES: [ZoneType; 4] = [
    ZoneType::Dma,
    ZoneType::Dma32,
    ZoneType::Normal,
    ZoneType::Movable,
];

impl ZoneType {
    pub fn name(self) -> &'static str {
        ["DMA", "DMA32", "Normal", "Movable"][self as usize]
    }
    pub fn from_index(i: u8) -> ZoneType {
        ZONE_TYPES[i as usize & 3]
    }
    pub fn parse(name: &str) -> Result<ZoneType> {
        ZONE_TYPES
            .iter()
            .copied()
            .find(|z| z.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                Error::UnknownZone(format!(
                    "unknown zone {name:?}: expected one of DMA, DMA32, Normal, Movable"
                ))
            })
    }
}

/// End addresses (bytes) of DMA, DMA32 and optionally Normal; memory above a Normal limit is Movable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneLimits {
    pub dma: Option<u64>,
    pub dma32: Option<u64>,
    pub normal: Option<u64>,
}

impl Default for ZoneLimits {
    fn default() -> Self {
        ZoneLimits {
            dma: Some(16 << 20),
            dma32: Some(4 << 30),
            normal: None,
        }
    }
}

/// One zone of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZoneSpan {
    pub zt: ZoneType,
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub present: u64,
}

impl ZoneSpan {
    pub fn spanned(&self) -> u64 {
        self.end_pfn - self.start_pfn
    }
}

/// One node with memory (`N_MEMORY`).
#[derive(Debug, Clone)]
pub struct NodeSpan {
    pub nid: u32,
    pub start_pfn: u64,
    pub end_pfn: u64,
    pub present: u64,
    /// Zones with spanned pages, ascending index.
    pub zones: Vec<ZoneSpan>,
    /// The node's highest populated zone, the only one that can be deferred.
    pub deferred_zone: ZoneType,
}

impl NodeSpan {
    pub fn spanned(&self) -> u64 {
        self.end_pfn - self.start_pfn
    }
    pub fn zone(&self, zt: ZoneType) -> Option<&ZoneSpan> {
        self.zones.iter().find(|z| z.zt == zt)
    }
}

/// Everything derived from the memblock arrays and zone limits: the machine's fixed layout.
#[derive(Debug, Clone)]
pub struct Layout {
    pub geometry: Geometry,
    /// Global pfn end of each zone type (u64::MAX = unbounded).
    pub zone_ends: [u64; 4],
    /// Memory pfn ranges (ascending, one per merged memory region).
    pub memory: Vec<PfnRange>,
    /// Free pfn ranges (memory minus reserved), ascending.
    pub free: Vec<PfnRange>,
    /// Reserved memory pfn ranges, ascending.
    pub reserved: Vec<PfnRange>,
    /// memblock.reserved as merged byte ranges (4.13's prefix compensation sums them).
    pub reserved_regions: Vec<Region>,
    /// Nodes ascending by id.
    pub nodes: Vec<NodeSpan>,
}

impl Layout {
    pub fn new(
        geometry: Geometry,
        memory: &[Region],
        reserved: &[Region],
        limits: ZoneLimits,
    ) -> Result<Self> {
        let memblock = Memblock::new(memory, reserved)?;
        let zone_ends = zone_ends(&geometry, limits)?;
        let mem = memblock.memory_pfn_ranges(&geometry);
        if mem.is_empty() {
            return Err(Error::Topology(
                "no memory region contains a whole page".into(),
            ));
        }
        let top = memblock.memory.iter().map(|r| r.end).max().unwrap();
        if top > 1 << MAX_PHYSMEM_BITS {
            return Err(Error::Topology(format!(
                "memory ends at {top:#x}, beyond the {MAX_PHYSMEM_BITS}-bit physical address space"
            )));
        }
        let free = memblock.free_ranges(&geometry);
        let res = memblock.reserved_memory_ranges(&geometry);
        let mut nids: Vec<u32> = mem.iter().map(|r| r.nid).collect();
        nids.sort_unstable();
        nids.dedup();
        let nodes = nids
            .iter()
            .map(|&nid| node_span(nid, &mem, &zone_ends))
            .collect();
        Ok(Layout {
            geometry,
            zone_ends,
            memory: mem,
            free,
            reserved: res,
            reserved_regions: memblock.reserved.clone(),
            nodes,
        })
    }

    pub fn node_index(&self, nid: u32) -> Result<usize> {
        self.nodes.iter().position(|n| n.nid == nid).ok_or_else(|| {
            let have: Vec<u32> = self.nodes.iter().map(|n| n.nid).collect();
            Error::UnknownNode(format!(
                "node {nid} has no memory in this machine (nodes: {have:?})"
            ))
        })
    }

    /// The zone type whose global pfn range contains `pfn`.
    pub fn zone_of(&self, pfn: u64) -> ZoneType {
        let i = self.zone_ends.iter().position(|&e| pfn < e).unwrap_or(3);
        ZONE_TYPES[i]
    }

    /// Present sections as runs `(first_section, count)`: a section is present iff it holds a memory pfn.
    pub fn present_section_runs(&self) -> Vec<(u64, u64)> {
        let g = &self.geometry;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for r in &self.memory {
            let (s, e) = (g.section_of(r.start), g.section_of(r.end - 1) + 1);
            match runs.last_mut() {
                Some(last) if s <= last.0 + last.1 => last.1 = last.1.max(e - last.0),
                _ => runs.push((s, e - s)),
            }
        }
        runs
    }

    pub fn memmap_pages(&self) -> u64 {
        self.present_section_runs().iter().map(|r| r.1).sum::<u64>() << self.geometry.section_shift
    }
}

fn zone_ends(g: &Geometry, l: ZoneLimits) -> Result<[u64; 4]> {
    let block = g.page_size() << g.max_order;
    let mut ends = [0u64; 4];
    let mut prev: (u64, &str) = (0, "");
    for (i, (lim, name)) in [(l.dma, "DMA"), (l.dma32, "DMA32"), (l.normal, "Normal")]
        .into_iter()
        .enumerate()
    {
        let end = match lim {
            Some(b) => {
                if b < prev.0 {
                    return Err(Error::Topology(format!(
                        "zone limits out of order: {name} ends at {b:#x}, below {} which ends at {:#x}",
                        prev.1, prev.0
                    )));
                }
                if b % block != 0 {
                    return Err(Error::Topology(format!(
                        "zone limit {name} = {b:#x} is not a multiple of the MAX_ORDER block size {block:#x}"
                    )));
                }
                prev = (b, name);
                g.pfn_down(b)
            }
            None if i == 2 => u64::MAX,
            None => g.pfn_down(prev.0),
        };
        ends[i] = end;
    }
    ends[3] = u64::MAX; // Movable: everything above a Normal limit

    Ok(ends)
}

fn node_span(nid: u32, mem: &[PfnRange], zone_ends: &[u64; 4]) -> NodeSpan {
    let mine: Vec<&PfnRange> = mem.iter().filter(|r| r.nid == nid).collect();
    let start = mine[0].start;
    let end = mine.iter().map(|r| r.end).max().unwrap();
    let mut zones = Vec::new();
    let mut zone_start_global = 0;
    for (i, &ze) in zone_ends.iter().enumerate() {
        let (s, e) = (zone_start_global.max(start), ze.min(end));
        zone_start_global = ze;
        if s < e {
            let present = mine
                .iter()
                .map(|r| r.end.min(e).saturating_sub(r.start.max(s)))
                .sum();
            zones.push(ZoneSpan {
                zt: ZONE_TYPES[i],
                start_pfn: s,
                end_pfn: e,
                present,
            });
        }
        if ze == u64::MAX {
            break;
        }
    }
    let deferred_zone = zones
        .iter()
        .rev()
        .find(|z| z.present > 0)
        .map(|z| z.zt)
        .unwrap();
    let present = mine.iter().map(|r| r.len()).sum();
    NodeSpan {
        nid,
        start_pfn: start,
        end_pfn: end,
        present,
        zones,
        deferred_zone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acceptance_machine_zones() {
        let l = Layout::new(
            Geometry::default(),
            &[Region::new(1 << 20, 5 << 30, 0)],
            &[],
            ZoneLimits::default(),
        )
        .unwrap();
        let n = &l.nodes[0];
        let spans: Vec<(ZoneType, u64, u64)> = n
            .zones
            .iter()
            .map(|z| (z.zt, z.start_pfn, z.spanned()))
            .collect();
        assert_eq!(
            spans,
            vec![
                (ZoneType::Dma, 0x100, 3840),
                (ZoneType::Dma32, 0x1000, 0xff000),
                (ZoneType::Normal, 0x100000, 0x40000)
            ]
        );
        assert_eq!(n.deferred_zone, ZoneType::Normal);
    }

    #[test]
    fn small_vm_last_zone_is_dma32() {
        let l = Layout::new(
            Geometry::default(),
            &[Region::new(0x1000, 3 << 30, 0)],
            &[],
            ZoneLimits::default(),
        )
        .unwrap();
        assert_eq!(l.nodes[0].deferred_zone, ZoneType::Dma32);
    }

    #[test]
    fn movable_above_normal_limit() {
        let lim = ZoneLimits {
            normal: Some(6 << 30),
            ..Default::default()
        };
        let l = Layout::new(Geometry::default(), &[Region::new(0, 8 << 30, 0)], &[], lim).unwrap();
        assert_eq!(l.nodes[0].deferred_zone, ZoneType::Movable);
        assert_eq!(
            l.nodes[0].zone(ZoneType::Movable).unwrap().present,
            (2 << 30) >> 12
        );
    }

    #[test]
    fn zone_limits_out_of_order() {
        let lim = ZoneLimits {
            dma: Some(4 << 30),
            dma32: Some(16 << 20),
            normal: None,
        };
        let e =
            Layout::new(Geometry::default(), &[Region::new(0, 8 << 30, 0)], &[], lim).unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
    }

    #[test]
    fn present_sections_cover_holes_inside_sections() {
        let g = Geometry::new(4096, 256 << 10, 3, 4).unwrap(); // 64-page sections
        let l = Layout::new(
            g,
            &[
                Region::new(0x1000, 0x5000, 0),
                Region::new(0x100000, 0x101000, 0),
            ],
            &[],
            ZoneLimits::default(),
        )
        .unwrap();
        assert_eq!(l.present_section_runs(), vec![(0, 1), (4, 1)]);
        assert_eq!(l.memmap_pages(), 128);
    }
}
