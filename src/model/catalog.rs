//! The catalog: the categories, the region tree and the custom feeds that `feeds.toml`
//! declares, with lookups by name. Every category and region has a feed; a region's feed rolls
//! up every region below it, which is why each region knows its lineage. `config` builds the
//! catalog, once, from a validated file; everything below config reads it.
//!
//! Feed URLs never break: a category, region or custom feed may list the names it had before
//! (`formerly`), which resolve to it, and a feed removed for good is listed as gone.

use std::collections::{BTreeSet, HashMap};

use super::{Article, Bucket, CategorySlug, FeedSlug, RegionCode};

/// A category; every category has a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// URL name.
    pub slug: CategorySlug,
    /// Display name, e.g. `氢能科技`.
    pub name: String,
    /// The slugs it had before, oldest first.
    pub formerly: Vec<CategorySlug>,
}

/// A region of the tree; every region has a feed that rolls up all regions below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    /// URL name, e.g. `320281`.
    pub code: RegionCode,
    /// Display name, e.g. `江阴市`.
    pub name: String,
    /// The region this one belongs to.
    pub parent: Option<RegionCode>,
    /// This region and all above it, nearest first: an article of this region belongs to
    /// each of their feeds.
    pub lineage: Vec<RegionCode>,
    /// The codes it had before, oldest first.
    pub formerly: Vec<RegionCode>,
}

/// A feed declared in `feeds.toml`: articles of any of its categories (all, if none) that are
/// also in any of its regions or below them (anywhere, if none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomFeed {
    /// URL name.
    pub slug: FeedSlug,
    /// Display title.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
    /// Categories, any of which qualifies.
    pub categories: Vec<CategorySlug>,
    /// Regions, any of which (or a region below it) qualifies.
    pub regions: Vec<RegionCode>,
    /// The slugs it had before, oldest first.
    pub formerly: Vec<FeedSlug>,
}

impl CustomFeed {
    /// Whether an article in these buckets belongs to this feed.
    pub fn contains(&self, buckets: &[Bucket]) -> bool {
        let in_category = self.categories.is_empty()
            || self
                .categories
                .iter()
                .any(|c| buckets.contains(&Bucket::Category(c.clone())));
        let in_region = self.regions.is_empty()
            || self
                .regions
                .iter()
                .any(|r| buckets.contains(&Bucket::Region(r.clone())));
        in_category && in_region
    }
}

/// Categories, the region tree and custom feeds, with lookups by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    // Filled by `config`, which validates every entry (names, parents, no cycles, what a custom
    // feed names) before it goes in; nothing else builds a catalog.
    pub(crate) categories: Vec<Category>,
    pub(crate) regions: Vec<Region>,
    pub(crate) feeds: Vec<CustomFeed>,
    pub(crate) category_index: HashMap<String, usize>,
    pub(crate) region_index: HashMap<String, usize>,
    pub(crate) feed_index: HashMap<String, usize>,
    /// Former names, each to the index of what bears it now.
    pub(crate) former_category_index: HashMap<String, usize>,
    pub(crate) former_region_index: HashMap<String, usize>,
    pub(crate) former_feed_index: HashMap<String, usize>,
    /// Paths below `/feeds/`, without extension, of feeds removed for good.
    pub(crate) gone: BTreeSet<String>,
}

impl Catalog {
    /// Categories in declared order.
    pub fn categories(&self) -> &[Category] {
        &self.categories
    }
    /// Regions in declared order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }
    /// Custom feeds in declared order.
    pub fn feeds(&self) -> &[CustomFeed] {
        &self.feeds
    }
    /// A category by slug.
    pub fn category(&self, slug: &str) -> Option<&Category> {
        self.category_index.get(slug).map(|&i| &self.categories[i])
    }
    /// A declared category's slug, for turning input text into a checked slug.
    pub fn category_slug(&self, slug: &str) -> Option<&CategorySlug> {
        self.category(slug).map(|c| &c.slug)
    }
    /// A region by code.
    pub fn region(&self, code: &str) -> Option<&Region> {
        self.region_index.get(code).map(|&i| &self.regions[i])
    }
    /// A custom feed by slug.
    pub fn feed(&self, slug: &str) -> Option<&CustomFeed> {
        self.feed_index.get(slug).map(|&i| &self.feeds[i])
    }
    /// The category that has or had this slug.
    pub fn current_category(&self, slug: &str) -> Option<&Category> {
        self.category(slug).or_else(|| self.renamed_category(slug))
    }
    /// The region that has or had this code.
    pub fn current_region(&self, code: &str) -> Option<&Region> {
        self.region(code).or_else(|| self.renamed_region(code))
    }
    /// The category that had this slug before and has another now.
    pub fn renamed_category(&self, former: &str) -> Option<&Category> {
        self.former_category_index
            .get(former)
            .map(|&i| &self.categories[i])
    }
    /// The region that had this code before and has another now.
    pub fn renamed_region(&self, former: &str) -> Option<&Region> {
        self.former_region_index
            .get(former)
            .map(|&i| &self.regions[i])
    }
    /// The custom feed that had this slug before and has another now.
    pub fn renamed_feed(&self, former: &str) -> Option<&CustomFeed> {
        self.former_feed_index.get(former).map(|&i| &self.feeds[i])
    }
    /// Whether the feed at this path (below `/feeds/`, without extension) was removed for good.
    pub fn is_gone(&self, path: &str) -> bool {
        self.gone.contains(path)
    }
    /// How many former names lead to a feed (categories, regions and custom feeds).
    pub fn former_count(&self) -> usize {
        self.former_category_index.len()
            + self.former_region_index.len()
            + self.former_feed_index.len()
    }
    /// How many feeds were removed for good.
    pub fn gone_count(&self) -> usize {
        self.gone.len()
    }
    /// Every former category slug with the category's slug now.
    pub fn former_categories(&self) -> impl Iterator<Item = (&CategorySlug, &CategorySlug)> {
        self.categories
            .iter()
            .flat_map(|c| c.formerly.iter().map(move |f| (f, &c.slug)))
    }
    /// Every former region code with the region's code now.
    pub fn former_regions(&self) -> impl Iterator<Item = (&RegionCode, &RegionCode)> {
        self.regions
            .iter()
            .flat_map(|r| r.formerly.iter().map(move |f| (f, &r.code)))
    }
    /// Every former path of a feed (below `/feeds/`, without extension, as `FeedId::path`
    /// writes it) with the feed's path now: categories', regions' and custom feeds'.
    pub fn former_paths(&self) -> Vec<(String, String)> {
        let categories = self
            .former_categories()
            .map(|(old, new)| (format!("category/{old}"), format!("category/{new}")));
        let regions = self
            .former_regions()
            .map(|(old, new)| (format!("region/{old}"), format!("region/{new}")));
        let feeds = self.feeds.iter().flat_map(|f| {
            f.formerly
                .iter()
                .map(move |old| (old.to_string(), f.slug.to_string()))
        });
        categories.chain(regions).chain(feeds).collect()
    }
    /// The paths (below `/feeds/`, without extension) of feeds removed for good.
    pub fn gone_paths(&self) -> impl Iterator<Item = &str> {
        self.gone.iter().map(String::as_str)
    }

    /// Direct children of a region (or the top-level regions, for `None`), in declared order.
    pub fn children<'a>(
        &'a self,
        parent: Option<&'a RegionCode>,
    ) -> impl Iterator<Item = &'a Region> {
        self.regions
            .iter()
            .filter(move |r| r.parent.as_ref() == parent)
    }

    /// The buckets an article is filed under: each of its categories, its region and every
    /// region above it.
    pub fn buckets(&self, article: &Article) -> Vec<Bucket> {
        self.buckets_of(article.categories(), article.region())
    }

    /// The buckets of an article filed under these categories and this region. A former name
    /// counts as the current one: a row the CMS wrote under it belongs to the feed that bears
    /// the name now.
    pub fn buckets_of(
        &self,
        categories: &[CategorySlug],
        region: Option<&RegionCode>,
    ) -> Vec<Bucket> {
        let mut out: Vec<Bucket> = Vec::with_capacity(categories.len());
        for slug in categories {
            let current = self
                .renamed_category(slug.as_str())
                .map_or(slug, |c| &c.slug);
            let bucket = Bucket::Category(current.clone());
            if !out.contains(&bucket) {
                out.push(bucket);
            }
        }
        if let Some(region) = region.and_then(|r| self.current_region(r.as_str())) {
            out.extend(region.lineage.iter().cloned().map(Bucket::Region));
        }
        out
    }

    /// A text that changes whenever the region tree does. Stored buckets depend on the tree
    /// (an article is filed under each ancestor), so the store refiles articles when it changes.
    pub fn region_tree_fingerprint(&self) -> String {
        let mut pairs: Vec<String> = self
            .regions
            .iter()
            .map(|r| {
                format!(
                    "{}<{}",
                    r.code,
                    r.parent.as_ref().map_or("", |p| p.as_str())
                )
            })
            .collect();
        pairs.sort();
        pairs.join(",")
    }
}
