//! The Lexicon schemas the server validates against: the vendored top-level `lexicons/` tree,
//! embedded in the binary at build time (`build.rs`), parsed once per process into an
//! [`atp_lexicon::Catalog`] shared by every [`crate::AppState`] (`state.lexicons()`).

use std::sync::{Arc, LazyLock};

use atp_lexicon::Catalog;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/lexicons.rs"));
}

/// The embedded documents: `(path relative to lexicons/, JSON text)`, sorted by path.
pub fn sources() -> &'static [(&'static str, &'static str)] {
    embedded::LEXICONS
}

static CATALOG: LazyLock<Arc<Catalog>> = LazyLock::new(|| {
    let catalog = Catalog::from_sources(sources().iter().copied());
    Arc::new(catalog.expect("the embedded lexicons load: checked by lexicons::tests"))
});

/// The catalog of the embedded schemas (parsed on first use, then shared).
pub fn catalog() -> Arc<Catalog> {
    Arc::clone(&CATALOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_tree_loads_whole_and_resolves() {
        assert!(
            sources().len() > 200,
            "only {} files embedded",
            sources().len()
        );
        let catalog = Catalog::from_sources(sources().iter().copied()).expect("loads");
        assert_eq!(catalog.len(), sources().len());
        assert_eq!(catalog.unresolved_refs(), Vec::new());
        for id in [
            "com.atproto.repo.createRecord",
            "com.atproto.repo.applyWrites",
            "app.bsky.feed.post",
        ] {
            assert!(catalog.contains(id), "{id} is not embedded");
        }
    }
}
