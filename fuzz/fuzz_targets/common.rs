//! What both fuzz targets check: an accepted article renders, in every format, to a
//! well-formed document that names it.

use std::path::Path;
use std::sync::LazyLock;

use feedcast::config::Settings;
use feedcast::feed::{Archive, FeedKey, Format, describe};
use feedcast::model::Article;
use feedcast::render::{render, verify};

pub static SETTINGS: LazyLock<Settings> = LazyLock::new(|| {
    Settings::parse(include_str!("../../feeds.toml"), Path::new("feeds.toml"))
        .expect("the shipped feeds.toml is valid")
});

pub fn check_renders(articles: &[Article]) {
    let s = &*SETTINGS;
    for format in Format::ALL {
        let key = FeedKey::parse(&format!("industry.{}", format.extension()), Some("limit=100"), s)
            .expect("a declared feed");
        let feed = describe(s, &key, articles.to_vec(), Archive::default());
        let body = render(&feed, s).expect("rendering never fails");
        if let Err(e) = verify::well_formed(format, &body) {
            panic!("ill-formed {format:?}: {e}\n{}", String::from_utf8_lossy(&body));
        }
        for a in articles {
            let id = format!("{}article/{}", s.site.id_prefix, a.id());
            assert!(
                format == Format::Html || String::from_utf8_lossy(&body).contains(&id),
                "{format:?} lost item {id}"
            );
        }
    }
}
