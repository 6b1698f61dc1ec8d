//! Page, section, pageblock and MAX_PAGE_ORDER constants, and pfn helpers.

use crate::error::{Error, Result};

/// `PAGE_SHIFT`, `PAGES_PER_SECTION`, `pageblock_order` and `MAX_PAGE_ORDER` (inclusive) of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub page_shift: u32,
    /// log2(PAGES_PER_SECTION)
    pub section_shift: u32,
    pub pageblock_order: u32,
    pub max_order: u32,
}

impl Default for Geometry {
    /// x86_64: 4 KiB pages, 128 MiB sections, pageblock_order 9, MAX_PAGE_ORDER 10.
    fn default() -> Self {
        Geometry {
            page_shift: 12,
            section_shift: 15,
            pageblock_order: 9,
            max_order: 10,
        }
    }
}

impl Geometry {
    /// Validate a geometry given in bytes: pageblock <= MAX_ORDER block <= section, all powers of two.
    pub fn new(
        page_size: u64,
        section_size: u64,
        pageblock_order: u32,
        max_order: u32,
    ) -> Result<Self> {
        if !page_size.is_power_of_two() || page_size < 512 {
            return Err(Error::Geometry(format!(
                "page_size must be a power of two >= 512, got {page_size}"
            )));
        }
        if !section_size.is_power_of_two() || section_size <= page_size {
            return Err(Error::Geometry(format!(
                "section_size must be a power of two larger than page_size ({page_size}), got {section_size}"
            )));
        }
        let section_shift = (section_size / page_size).trailing_zeros();
        if pageblock_order > max_order || max_order > section_shift {
            return Err(Error::Geometry(format!(
                "need pageblock ({} pages) <= MAX_ORDER block ({} pages) <= section ({} pages); got \
                 pageblock_order={pageblock_order}, max_order={max_order}",
                1u128 << pageblock_order.min(100),
                1u128 << max_order.min(100),
                1u64 << section_shift
            )));
        }
        Ok(Geometry {
            page_shift: page_size.trailing_zeros(),
            section_shift,
            pageblock_order,
            max_order,
        })
    }

    pub fn page_size(&self) -> u64 {
        1 << self.page_shift
    }
    /// `PAGES_PER_SECTION`
    pub fn pages_per_section(&self) -> u64 {
        1 << self.section_shift
    }
    pub fn pageblock_nr_pages(&self) -> u64 {
        1 << self.pageblock_order
    }
    /// `MAX_ORDER_NR_PAGES`
    pub fn max_order_nr_pages(&self) -> u64 {
        1 << self.max_order
    }
    /// `PFN_UP`: first pfn whose page starts at or after `addr`.
    pub fn pfn_up(&self, addr: u64) -> u64 {
        (addr >> self.page_shift) + u64::from(addr & (self.page_size() - 1) != 0)
    }
    /// `PFN_DOWN`: pfn of the page that contains `addr`.
    pub fn pfn_down(&self, addr: u64) -> u64 {
        addr >> self.page_shift
    }
    pub fn section_of(&self, pfn: u64) -> u64 {
        pfn >> self.section_shift
    }
    /// `round_up(pfn, PAGES_PER_SECTION)`
    pub fn section_align_up(&self, pfn: u64) -> u64 {
        let m = self.pages_per_section() - 1;
        pfn.saturating_add(m) & !m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_defaults() {
        let g = Geometry::default();
        assert_eq!(g.pages_per_section(), 32768);
        assert_eq!(g.max_order_nr_pages(), 1024);
        assert_eq!(g.pageblock_nr_pages(), 512);
        assert_eq!(Geometry::new(4096, 128 << 20, 9, 10).unwrap(), g);
    }

    #[test]
    fn pfn_rounding() {
        let g = Geometry::default();
        assert_eq!(g.pfn_up(0x1000), 1);
        assert_eq!(g.pfn_up(0x1001), 2);
        assert_eq!(g.pfn_down(0x1fff), 1);
        assert_eq!(g.section_align_up(1), 32768);
        assert_eq!(g.section_align_up(32768), 32768);
    }

    #[test]
    fn rejects_bad_geometries() {
        assert!(Geometry::new(4096, 256 << 10, 3, 7).is_err()); // max-order block 128 > section 64
        assert!(Geometry::new(4096, 256 << 10, 5, 4).is_err()); // pageblock above max order
        assert!(Geometry::new(3000, 256 << 10, 3, 4).is_err());
        assert!(Geometry::new(4096, 4096, 0, 0).is_err());
        assert!(Geometry::new(4096, 256 << 10, 3, 4).is_ok());
    }
}
