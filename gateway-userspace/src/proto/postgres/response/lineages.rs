//! Lineages of statement texts, shared by every session.

use std::{num::NonZeroUsize, sync::Mutex};

use lru::LruCache;

use super::*;

/// Lineages of statement texts, shared by all sessions (and by literal shape when the result
/// cannot depend on a literal).
pub struct LineageCache {
    cache: Mutex<LruCache<String, Arc<Lineage>>>,
}

impl Default for LineageCache {
    fn default() -> Self {
        LineageCache {
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(4096).expect("non-zero"))),
        }
    }
}

/// Texts longer than this are analysed but not cached.
const MAX_CACHED_SQL: usize = 16 * 1024;
const SHAPE_PREFIX: &str = "\0lineage\0";

impl LineageCache {
    pub fn get(&self, sql: &str, trusted: &[String]) -> Arc<Lineage> {
        let lock = || self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = lock().get(sql) {
            return l.clone();
        }
        let shape = (sql.len() <= MAX_CACHED_SQL)
            .then(|| literal_shape(SHAPE_PREFIX, sql))
            .flatten();
        if let Some(k) = &shape
            && let Some(l) = lock().get(k.as_str())
        {
            return l.clone();
        }
        let l = Arc::new(lineage::analyze(sql, trusted));
        if sql.len() <= MAX_CACHED_SQL {
            let mut c = lock();
            if let Some(k) = shape
                && !l.literal_dependent
            {
                c.put(k, l.clone());
            }
            c.put(sql.to_string(), l.clone());
        }
        l
    }
}
