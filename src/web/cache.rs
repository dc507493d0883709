//! Rendered pages kept between requests. The status page costs milliseconds per thousand
//! servers to build, and visitors, dashboards and load balancers ask for it far more often than
//! it changes, so each variant is built once, compressed once, and shared.
//!
//! A cached page is served while it matches the monitor's [`generation`] or is less than
//! [`FRESH`] old — or, for a page that took long to build, ten times its build time (at most
//! [`MAX_FRESH`]), so that rebuilding a 10,000-server page for a steady stream of visitors
//! takes a tenth of a core, not all of it. An older page that no longer matches is still
//! served for [`STALE`] more while one background task rebuilds it; beyond that the request
//! waits for a rebuild, so nobody gets a page much older than the data. The page states when
//! it was generated.
//!
//! [`generation`]: crate::scheduler::Board::generation

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

/// How long a page is served without checking for changes.
pub(crate) const FRESH: Duration = Duration::from_secs(1);
/// The longest a page is served without checking, however slow it is to build.
pub(crate) const MAX_FRESH: Duration = Duration::from_secs(10);
/// How much longer than it took to build a page is served without checking.
const BUILD_RATIO: u32 = 10;
/// How long an outdated page may still be served while its replacement is built.
pub(crate) const STALE: Duration = Duration::from_secs(10);
/// A variant nobody asked for this long is dropped: with 10,000 servers a page is tens of
/// megabytes, and a crawler walking every language, order and filter once must not leave
/// them all in memory.
pub(crate) const IDLE: Duration = Duration::from_secs(300);
/// At most this many variants are kept (the least recently asked for goes first): pages,
/// searches and orders are open-ended, and a visitor walking them must not grow memory.
pub(crate) const MAX_VARIANTS: usize = 64;

/// One built page.
pub(crate) struct Page {
    /// The monitor generation it was built from.
    generation: u64,
    built: Instant,
    /// How long building it took.
    cost: Duration,
    /// The HTML.
    pub(crate) body: Bytes,
    /// The HTML, gzip-compressed.
    pub(crate) gzip: Bytes,
    /// Response headers that depend on the content (the page's CSP).
    pub(crate) csp: String,
}

impl Page {
    /// Builds a page from its HTML and CSP, compressing it once.
    pub(crate) fn new(generation: u64, body: String, csp: String) -> Page {
        let gzip = gzip(body.as_bytes(), Compression::new(6));
        Page {
            generation,
            built: Instant::now(),
            cost: Duration::ZERO,
            body: Bytes::from(body),
            gzip: Bytes::from(gzip),
            csp,
        }
    }

    fn usable(&self, generation: u64, within: Duration) -> bool {
        self.generation == generation || self.built.elapsed() < within
    }

    /// How long this page is served without checking for changes.
    fn fresh_for(&self) -> Duration {
        (self.cost * BUILD_RATIO).clamp(FRESH, MAX_FRESH)
    }
}

/// Runs `build`, noting how long it took.
fn timed(build: &(dyn Fn() -> Page + Send + Sync)) -> Page {
    let started = Instant::now();
    let mut page = build();
    page.cost = started.elapsed();
    page
}

/// The latest page of one variant, and the lock held while rebuilding it.
#[derive(Default)]
struct Variant {
    page: Mutex<Option<Arc<Page>>>,
    rebuild: Arc<tokio::sync::Mutex<()>>,
}

impl Variant {
    fn current(&self) -> Option<Arc<Page>> {
        self.page.lock().expect("page lock").clone()
    }

    fn set(&self, page: Arc<Page>) {
        *self.page.lock().expect("page lock") = Some(page);
    }
}

/// Built pages by variant (language, sort order, filter, search, page), with when each was
/// last asked for.
#[derive(Default)]
pub(crate) struct PageCache {
    variants: Mutex<HashMap<String, (Arc<Variant>, Instant)>>,
}

impl PageCache {
    /// The page for `key` at monitor generation `generation`, from the cache or built by
    /// `build` (on a blocking thread, at most one build per variant at a time).
    pub(crate) async fn get<F>(&self, key: &str, generation: u64, build: F) -> Arc<Page>
    where
        F: Fn() -> Page + Send + Sync + 'static,
    {
        let variant = self.variant(key, Instant::now());
        let build = Arc::new(build);
        if let Some(page) = variant.current() {
            if page.usable(generation, page.fresh_for()) {
                return page;
            }
            if page.usable(generation, page.fresh_for() + STALE) {
                if let Ok(guard) = variant.rebuild.clone().try_lock_owned() {
                    let variant = variant.clone();
                    let build = build.clone();
                    tokio::spawn(async move {
                        if let Ok(fresh) = tokio::task::spawn_blocking(move || timed(&*build)).await
                        {
                            variant.set(Arc::new(fresh));
                        }
                        drop(guard);
                    });
                }
                return page;
            }
        }
        let _guard = variant.rebuild.lock().await;
        // Whoever held the lock may just have built it.
        if let Some(page) = variant
            .current()
            .filter(|p| p.usable(generation, p.fresh_for()))
        {
            return page;
        }
        let page = Arc::new(
            tokio::task::spawn_blocking(move || timed(&*build))
                .await
                .expect("page builders do not panic"),
        );
        variant.set(page.clone());
        page
    }
}

impl PageCache {
    /// The variant for `key`, marked as used at `now`; variants idle for [`IDLE`] are dropped.
    fn variant(&self, key: &str, now: Instant) -> Arc<Variant> {
        let mut variants = self.variants.lock().expect("variants lock");
        variants.retain(|k, (_, used)| k == key || now.saturating_duration_since(*used) < IDLE);
        if !variants.contains_key(key) && variants.len() >= MAX_VARIANTS {
            let oldest = variants
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                variants.remove(&k);
            }
        }
        let entry = variants
            .entry(key.to_owned())
            .or_insert_with(|| (Arc::default(), now));
        entry.1 = now;
        entry.0.clone()
    }
}

/// `data`, gzip-compressed at `level`.
pub(crate) fn gzip(data: &[u8], level: Compression) -> Vec<u8> {
    gzip_parts(&[data], level)
}

/// The parts one after another, gzip-compressed at `level` as one stream.
pub(crate) fn gzip_parts<P: AsRef<[u8]>>(parts: &[P], level: Compression) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.as_ref().len()).sum();
    let mut gz = GzEncoder::new(Vec::with_capacity(size / 4), level);
    for part in parts {
        gz.write_all(part.as_ref())
            .expect("writing to a Vec cannot fail");
    }
    gz.finish().expect("writing to a Vec cannot fail")
}

/// Whether the request's `Accept-Encoding` allows gzip.
pub(crate) fn accepts_gzip(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(
        builds: &Arc<AtomicUsize>,
        generation: u64,
    ) -> impl Fn() -> Page + Send + Sync + 'static + use<> {
        let builds = builds.clone();
        move || {
            let n = builds.fetch_add(1, Ordering::SeqCst) + 1;
            Page::new(generation, format!("<p>build {n}</p>"), String::new())
        }
    }

    #[tokio::test]
    async fn pages_are_built_once_per_generation_and_compressed() {
        let cache = PageCache::default();
        let builds = Arc::new(AtomicUsize::new(0));
        let a = cache.get("en", 1, counting(&builds, 1)).await;
        let b = cache.get("en", 1, counting(&builds, 1)).await;
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        assert!(Arc::ptr_eq(&a, &b));
        let mut html = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&a.gzip[..]), &mut html)
            .unwrap();
        assert_eq!(html, "<p>build 1</p>");
        // Another variant is built separately.
        cache.get("zh", 1, counting(&builds, 1)).await;
        assert_eq!(builds.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_new_generation_is_served_within_a_second() {
        let cache = PageCache::default();
        let builds = Arc::new(AtomicUsize::new(0));
        cache.get("en", 1, counting(&builds, 1)).await;
        // Changed, but the page is under a second old: still the cached one.
        let same = cache.get("en", 2, counting(&builds, 2)).await;
        assert_eq!(&same.body[..], b"<p>build 1</p>");
        tokio::time::sleep(FRESH + Duration::from_millis(50)).await;
        // Outdated and older than FRESH: served once more while a rebuild runs.
        let stale = cache.get("en", 2, counting(&builds, 2)).await;
        assert_eq!(&stale.body[..], b"<p>build 1</p>");
        let mut fresh = stale;
        for _ in 0..100 {
            fresh = cache.get("en", 2, counting(&builds, 2)).await;
            if fresh.generation == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(&fresh.body[..], b"<p>build 2</p>");
        assert_eq!(builds.load(Ordering::SeqCst), 2, "one background rebuild");
    }

    #[tokio::test]
    async fn slow_pages_are_kept_ten_times_their_build_time() {
        let cache = PageCache::default();
        let builds = Arc::new(AtomicUsize::new(0));
        let slow = {
            let builds = builds.clone();
            move || {
                builds.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(150));
                Page::new(1, String::new(), String::new())
            }
        };
        let page = cache.get("en", 1, slow.clone()).await;
        assert!(page.cost >= Duration::from_millis(150));
        assert!(page.fresh_for() >= Duration::from_millis(1500));
        // Past FRESH, within ten build times: still served as is, nothing rebuilt.
        tokio::time::sleep(FRESH + Duration::from_millis(100)).await;
        let again = cache.get("en", 2, slow).await;
        assert!(Arc::ptr_eq(&page, &again));
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        // Fast pages keep the one-second floor; nothing is kept past MAX_FRESH.
        let fast = Page::new(1, String::new(), String::new());
        assert_eq!(fast.fresh_for(), FRESH);
        let glacial = Page {
            cost: Duration::from_secs(5),
            ..Page::new(1, String::new(), String::new())
        };
        assert_eq!(glacial.fresh_for(), MAX_FRESH);
    }

    #[tokio::test]
    async fn variants_nobody_asks_for_are_dropped() {
        let cache = PageCache::default();
        let builds = Arc::new(AtomicUsize::new(0));
        for key in ["en|name|0", "zh|name|0", "en|latency|1"] {
            cache.get(key, 1, counting(&builds, 1)).await;
        }
        assert_eq!(cache.variants.lock().unwrap().len(), 3);
        // Within IDLE everything stays.
        let soon = Instant::now() + IDLE / 2;
        cache.variant("en|name|0", soon);
        assert_eq!(cache.variants.lock().unwrap().len(), 3);
        // Past IDLE only the ones used since survive.
        cache.variant("en|name|0", soon + IDLE / 2 + Duration::from_secs(1));
        let mut left: Vec<_> = cache.variants.lock().unwrap().keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["en|name|0"]);
        // A dropped variant is built again when asked for.
        cache.get("zh|name|0", 1, counting(&builds, 1)).await;
        assert_eq!(builds.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn at_most_max_variants_are_kept_the_least_recent_going_first() {
        let cache = PageCache::default();
        let builds = Arc::new(AtomicUsize::new(0));
        for i in 0..MAX_VARIANTS + 10 {
            cache
                .get(&format!("en|q={i}"), 1, counting(&builds, 1))
                .await;
        }
        let variants = cache.variants.lock().unwrap();
        assert_eq!(variants.len(), MAX_VARIANTS);
        assert!(!variants.contains_key("en|q=0"), "the oldest went first");
        assert!(variants.contains_key(&format!("en|q={}", MAX_VARIANTS + 9)));
    }

    #[test]
    fn gzip_negotiation() {
        let h = |v: &str| {
            let mut m = axum::http::HeaderMap::new();
            m.insert(axum::http::header::ACCEPT_ENCODING, v.parse().unwrap());
            accepts_gzip(&m)
        };
        assert!(h("gzip, deflate, br"));
        assert!(h("br;q=1.0, GZIP;q=0.5"));
        assert!(h("*"));
        assert!(!h("gzip;q=0"));
        assert!(!h("br, deflate"));
        assert!(!h("identity"));
        assert!(!accepts_gzip(&axum::http::HeaderMap::new()));
    }
}
