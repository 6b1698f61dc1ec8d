//! memblock: memory regions (with node ids) and reserved regions, and the free-range iteration
//! (`for_each_free_mem_range` + `PFN_UP`/`PFN_DOWN`, spec §1.2) that every boot path walks.

use crate::error::{Error, Result};
use crate::geometry::Geometry;

/// Highest node id + 1 (`MAX_NUMNODES`).
pub const MAX_NUMNODES: u32 = 1024;

/// A byte range `[start, end)`; `nid` matters for memory regions only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub nid: u32,
}

impl Region {
    pub const fn new(start: u64, end: u64, nid: u32) -> Region {
        Region { start, end, nid }
    }
}

/// A pfn range `[start, end)` of one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PfnRange {
    pub start: u64,
    pub end: u64,
    pub nid: u32,
}

impl PfnRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

/// The two memblock arrays, validated, sorted and merged as `memblock_add`/`memblock_reserve` leave them.
#[derive(Debug, Clone)]
pub struct Memblock {
    pub memory: Vec<Region>,
    pub reserved: Vec<Region>,
}

impl Memblock {
    pub fn new(memory: &[Region], reserved: &[Region]) -> Result<Self> {
        let mut mem = memory.to_vec();
        for r in mem.iter().chain(reserved) {
            if r.end <= r.start {
                return Err(Error::Topology(format!(
                    "region [{:#x}, {:#x}) is empty or reversed: its end must be above its start",
                    r.start, r.end
                )));
            }
        }
        if let Some(r) = mem.iter().find(|r| r.nid >= MAX_NUMNODES) {
            return Err(Error::Topology(format!(
                "region [{:#x}, {:#x}): node {} is not below MAX_NUMNODES ({MAX_NUMNODES})",
                r.start, r.end, r.nid
            )));
        }
        if mem.is_empty() {
            return Err(Error::Topology(
                "a topology needs at least one memory region".into(),
            ));
        }
        mem.sort_by_key(|r| (r.start, r.end));
        for w in mem.windows(2) {
            if w[1].start < w[0].end {
                return Err(Error::Topology(format!(
                    "memory regions overlap: [{:#x}, {:#x}) node {} and [{:#x}, {:#x}) node {}",
                    w[0].start, w[0].end, w[0].nid, w[1].start, w[1].end, w[1].nid
                )));
            }
        }
        let mut merged: Vec<Region> = Vec::with_capacity(mem.len());
        for r in mem {
            match merged.last_mut() {
                Some(last) if last.end == r.start && last.nid == r.nid => last.end = r.end,
                _ => merged.push(r),
            }
        }
        let mut res = reserved.to_vec();
        res.sort_by_key(|r| (r.start, r.end));
        let mut res_merged: Vec<Region> = Vec::with_capacity(res.len());
        for r in res {
            match res_merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => res_merged.push(Region { nid: 0, ..r }),
            }
        }
        Ok(Memblock {
            memory: merged,
            reserved: res_merged,
        })
    }

    /// `for_each_mem_pfn_range`: each memory region as whole pages, empty ones dropped.
    pub fn memory_pfn_ranges(&self, g: &Geometry) -> Vec<PfnRange> {
        self.memory
            .iter()
            .map(|r| PfnRange {
                start: g.pfn_up(r.start),
                end: g.pfn_down(r.end),
                nid: r.nid,
            })
            .filter(|r| !r.is_empty())
            .collect()
    }

    /// Reserved pfns: `[PFN_DOWN(start), PFN_UP(end))` of each reserved region, merged.
    fn reserved_pfn_ranges(&self, g: &Geometry) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for r in &self.reserved {
            let (s, e) = (g.pfn_down(r.start), g.pfn_up(r.end));
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Memory pfns that are reserved, per memory region (reserved bytes outside memory are ignored).
    pub fn reserved_memory_ranges(&self, g: &Geometry) -> Vec<PfnRange> {
        let res = self.reserved_pfn_ranges(g);
        let mut out = Vec::new();
        for m in self.memory_pfn_ranges(g) {
            for &(rs, re) in &res {
                let (s, e) = (rs.max(m.start), re.min(m.end));
                if s < e {
                    out.push(PfnRange {
                        start: s,
                        end: e,
                        nid: m.nid,
                    });
                }
            }
        }
        out
    }

    /// `for_each_free_mem_range` over all nodes, as pfns: memory minus reserved, ascending, each range
    /// inside one memory region. Partial pages at either edge are excluded (`PFN_UP`/`PFN_DOWN`).
    pub fn free_ranges(&self, g: &Geometry) -> Vec<PfnRange> {
        let res = self.reserved_pfn_ranges(g);
        let mut out = Vec::new();
        for m in self.memory_pfn_ranges(g) {
            let mut cur = m.start;
            for &(rs, re) in res.iter().filter(|&&(rs, re)| re > m.start && rs < m.end) {
                if rs > cur {
                    out.push(PfnRange {
                        start: cur,
                        end: rs,
                        nid: m.nid,
                    });
                }
                cur = cur.max(re);
            }
            if cur < m.end {
                out.push(PfnRange {
                    start: cur,
                    end: m.end,
                    nid: m.nid,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// memblock with the memory regions `(start, end, nid)` and nothing reserved.
    fn memory_only(memory: &[(u64, u64, u32)]) -> Result<Memblock> {
        let regions: Vec<_> = memory
            .iter()
            .map(|&(s, e, n)| Region::new(s, e, n))
            .collect();
        Memblock::new(&regions, &[])
    }

    #[test]
    fn free_ranges_subtract_reserved_with_page_rounding() {
        let g = Geometry::default();
        // memory [1 MiB, 5 GiB), reserved [16 MiB, 48 MiB) plus a sub-page reservation at 64 MiB + 100.
        let mb = Memblock::new(
            &[Region::new(1 << 20, 5 << 30, 0)],
            &[
                Region::new(16 << 20, 48 << 20, 0),
                Region::new((64 << 20) + 100, (64 << 20) + 200, 0),
            ],
        )
        .unwrap();
        let free = mb.free_ranges(&g);
        assert_eq!(
            free,
            vec![
                PfnRange {
                    start: 0x100,
                    end: 0x1000,
                    nid: 0
                },
                PfnRange {
                    start: 0x3000,
                    end: 0x4000,
                    nid: 0
                },
                PfnRange {
                    start: 0x4001,
                    end: 0x140000,
                    nid: 0
                },
            ]
        );
        let res = mb.reserved_memory_ranges(&g);
        assert_eq!(res.iter().map(|r| r.len()).sum::<u64>(), 0x2000 + 1);
    }

    #[test]
    fn overlapping_memory_is_rejected_naming_both() {
        let err = memory_only(&[(0, 0x2000, 0), (0x1000, 0x3000, 1)]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("[0x0, 0x2000) node 0") && msg.contains("[0x1000, 0x3000) node 1"),
            "{msg}"
        );
    }

    #[test]
    fn touching_regions_of_one_node_merge() {
        let mb = memory_only(&[(0x1800, 0x3000, 0), (0, 0x1800, 0)]).unwrap();
        assert_eq!(mb.memory, vec![Region::new(0, 0x3000, 0)]);
        let mb = memory_only(&[(0x1800, 0x3000, 1), (0, 0x1800, 0)]).unwrap();
        // different nodes: the page [0x1000, 0x2000) belongs to neither
        assert_eq!(
            mb.memory_pfn_ranges(&Geometry::default()),
            vec![
                PfnRange {
                    start: 0,
                    end: 1,
                    nid: 0
                },
                PfnRange {
                    start: 2,
                    end: 3,
                    nid: 1
                }
            ]
        );
    }

    #[test]
    fn reversed_region_rejected() {
        assert!(matches!(
            memory_only(&[(0x2000, 0x1000, 0)]),
            Err(Error::Topology(_))
        ));
        assert!(matches!(
            Memblock::new(&[Region::new(0, 0x1000, 0)], &[Region::new(5, 5, 0)]),
            Err(Error::Topology(_))
        ));
    }
}
