//! Rendering without a store: golden files pin the exact bytes of each format for articles
//! with hostile text and every reprint credit, and every output parses back to what went in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{article, settings};
use feedcast::feed::{Archive, FeedKey, Month, describe};
use feedcast::render::render;
use serde_json::json;

fn hostile() -> Vec<feedcast::model::Article> {
    vec![
        article(json!({
            "id": "hostile-1",
            "title": "<item> ]]> 《\"氢\"装上阵》R&amp;D & \u{0001}控制符 🚀",
            "summary": "摘要 <b>粗体</b> &amp;amp; ]]>",
            "content_html": "<p>正文 ]]> <script>alert(1)</script><a href=\"/rel/1.html\" onclick=\"x()\">相对链接</a> مرحبا e\u{0301}</p>",
            "url": "https://www.kechuang.example.cn/news/hostile-1.html",
            "published_at": "2024-05-18T09:30:00.999999+08:00",
            "image": "/uploads/2024/lead.jpg?w=600&h=400",
            "categories": ["hydrogen"], "region": "320281",
            "source": {
                "name": "江阴日报 & <b>晚报</b>", "url": "https://www.jyrb.example.com/a?id=1&from=rss",
                "author": "王明 <b>&amp;</b> ]]>\u{0001}", "title": "<i>氢</i>“装”上阵 ]]> & 原题",
                "published_at": "2024-05-17T20:00:00.5+08:00"
            },
            "editor": "周<br>编辑 & ]]>", "short_title": "氢装上阵"
        })),
        // A reprint that names no original author: credited to its publisher, not the portal.
        article(json!({
            "id": "reprint-3", "title": "无锡日报：新材料项目签约", "content_html": "<p>签约。</p>",
            "url": "https://www.kechuang.example.cn/news/reprint-3.html",
            "published_at": "2024-05-10T08:00:00+08:00", "categories": ["materials"], "region": "320200",
            "source": {"name": "无锡日报", "url": "https://www.wxrb.example.com/2024/05/10.html"}
        })),
        // The portal's own article, with its author and the editor who filed it.
        article(json!({
            "id": "plain-2", "title": "无锡出台新材料产业政策", "content_html": "<p>无锡市出台政策。</p>",
            "url": "https://www.kechuang.example.cn/news/plain-2.html",
            "published_at": "2021-01-19", "categories": ["materials"], "region": "320200", "author": "李华",
            "editor": "陈静"
        })),
    ]
}

/// The newest-items view links back to the month of its newest item.
fn latest_archive() -> Archive {
    Archive {
        prev: Month::parse("2024-05"),
        next: None,
    }
}

fn check_golden(name: &str, actual: &[u8]) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        String::from_utf8_lossy(actual),
        String::from_utf8_lossy(&expected),
        "{name} differs from its golden file (UPDATE_GOLDEN=1 rewrites it after review)"
    );
}

#[test]
fn rss_matches_its_golden_file_and_round_trips() {
    let s = settings();
    let key = FeedKey::parse("region/320000.rss", None, &s).unwrap();
    let body = render(&describe(&s, &key, hostile(), latest_archive()), &s).unwrap();
    check_golden("region-320000.rss", &body);

    let channel = rss::Channel::read_from(&body[..]).unwrap();
    let item = &channel.items()[0];
    // `<item>` is markup, so plain text drops it; the rest survives, decoded once.
    assert_eq!(item.title(), Some("]]> 《\"氢\"装上阵》R&D & 控制符 🚀"));
    // `<description>` is HTML: the plain-text summary `摘要 粗体 &amp; ]]>`, escaped once.
    assert_eq!(item.description(), Some("摘要 粗体 &amp;amp; ]]&gt;"));
    let content = item.content().unwrap();
    assert!(!content.contains("<script"), "{content}");
    assert!(
        content.contains("https://www.kechuang.example.cn/rel/1.html"),
        "{content}"
    );
    assert!(content.contains("مرحبا e\u{301}"), "{content}");
    assert_eq!(
        item.source().unwrap().url(),
        "https://www.jyrb.example.com/a?id=1&from=rss"
    );
    assert_eq!(item.source().unwrap().title(), Some("江阴日报 & 晚报"));
    // `<source>` stays the publisher, its `url` the original report; Dublin Core credits the
    // original author and the editor, and never repeats the report as `dc:source` (validators
    // warn about an item with both).
    let dc = item.dublin_core_ext().unwrap();
    assert_eq!(dc.creators(), ["王明 & ]]>"]);
    assert_eq!(dc.contributors(), ["周编辑 & ]]>"]);
    assert!(dc.sources().is_empty());
    assert!(
        content.contains("　原作者：王明 &amp; ]]&gt;　原题：《氢“装”上阵 ]]&gt; &amp; 原题》　编辑：周编辑 &amp; ]]&gt;　转载文章"),
        "{content}"
    );
    // A reprint without an original author is its publisher's; the portal's own article is
    // its author's, with its editor a contributor.
    let dc = channel.items()[1].dublin_core_ext().unwrap();
    assert_eq!(dc.creators(), ["无锡日报"]);
    assert!(dc.contributors().is_empty());
    let dc = channel.items()[2].dublin_core_ext().unwrap();
    assert_eq!(
        (dc.creators(), dc.contributors()),
        (&["李华".to_owned()][..], &["陈静".to_owned()][..])
    );
    assert!(dc.sources().is_empty());
    assert_eq!(
        channel.items()[2].pub_date(),
        Some("Tue, 19 Jan 2021 00:00:00 +0800")
    );
}

#[test]
fn atom_matches_its_golden_file_and_round_trips() {
    let s = settings();
    let key = FeedKey::parse("region/320000.atom", None, &s).unwrap();
    let body = render(&describe(&s, &key, hostile(), latest_archive()), &s).unwrap();
    check_golden("region-320000.atom", &body);

    let feed = atom_syndication::Feed::read_from(&body[..]).unwrap();
    assert_eq!(feed.id(), "tag:kechuang.example.cn,2021:feed/region/320000");
    assert_eq!(feed.updated().to_rfc3339(), "2024-05-18T09:30:00+08:00");
    let entry = &feed.entries()[0];
    assert_eq!(entry.id(), "tag:kechuang.example.cn,2021:article/hostile-1");
    assert_eq!(
        entry.title().as_str(),
        "]]> 《\"氢\"装上阵》R&D & 控制符 🚀"
    );
    assert!(entry.content().unwrap().value().unwrap().contains(
        "来源：<a href=\"https://www.jyrb.example.com/a?id=1&amp;from=rss\">江阴日报 &amp; 晚报</a>　原作者："
    ));
    // `<source>` stays the publisher, dated when the original appeared; the original author
    // is the entry's author and the editor its contributor.
    let source = entry.source().unwrap();
    assert_eq!(source.title().as_str(), "江阴日报 & 晚报");
    assert_eq!(source.updated().to_rfc3339(), "2024-05-17T20:00:00+08:00");
    let names = |people: &[atom_syndication::Person]| {
        people
            .iter()
            .map(|p| (p.name().to_owned(), p.uri().map(str::to_owned)))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(entry.authors()), [("王明 & ]]>".to_owned(), None)]);
    assert_eq!(
        names(entry.contributors()),
        [("周编辑 & ]]>".to_owned(), None)]
    );
    // A reprint that names no original author is credited to its publisher, never left to
    // inherit the feed's author (the portal).
    assert_eq!(
        names(feed.entries()[1].authors()),
        [(
            "无锡日报".to_owned(),
            Some("https://www.wxrb.example.com/2024/05/10.html".to_owned())
        )]
    );
    assert_eq!(feed.entries()[2].authors()[0].name(), "李华");
    assert_eq!(feed.entries()[2].contributors()[0].name(), "陈静");
}

#[test]
fn an_empty_feed_is_valid_and_stable() {
    let s = settings();
    let key = FeedKey::parse("category/reform.atom", None, &s).unwrap();
    let a = render(&describe(&s, &key, Vec::new(), Archive::default()), &s).unwrap();
    let b = render(&describe(&s, &key, Vec::new(), Archive::default()), &s).unwrap();
    assert_eq!(a, b);
    assert!(
        atom_syndication::Feed::read_from(&a[..])
            .unwrap()
            .entries()
            .is_empty()
    );
}

#[test]
fn json_feed_matches_its_golden_file_and_round_trips() {
    let s = settings();
    let key = FeedKey::parse("region/320000.json", None, &s).unwrap();
    let body = render(&describe(&s, &key, hostile(), latest_archive()), &s).unwrap();
    check_golden("region-320000.json", &body);

    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(
        doc["feed_url"],
        "http://127.0.0.1:8080/feeds/region/320000.json"
    );
    assert_eq!(
        doc["next_url"],
        "http://127.0.0.1:8080/feeds/region/320000/archive/2024-05.json"
    );
    let item = &doc["items"][0];
    assert_eq!(item["id"], "tag:kechuang.example.cn,2021:article/hostile-1");
    assert_eq!(item["date_published"], "2024-05-18T09:30:00+08:00");
    assert_eq!(
        item["_source"]["url"],
        "https://www.jyrb.example.com/a?id=1&from=rss"
    );
    assert_eq!(item["tags"][0], "氢能科技");
    assert!(item["content_html"].as_str().unwrap().contains("来源："));
    assert_eq!(
        item["_source"],
        json!({
            "name": "江阴日报 & 晚报", "url": "https://www.jyrb.example.com/a?id=1&from=rss",
            "author": "王明 & ]]>", "title": "氢“装”上阵 ]]> & 原题",
            "published_at": "2024-05-17T20:00:00+08:00", "editor": "周编辑 & ]]>"
        })
    );
    assert_eq!(item["authors"], json!([{"name": "王明 & ]]>"}]));
    // Without an original author, the publisher: an item without authors would be the portal's.
    assert_eq!(
        doc["items"][1]["authors"],
        json!([{"name": "无锡日报", "url": "https://www.wxrb.example.com/2024/05/10.html"}])
    );
    // The portal's own article credits its editor after its author, as RSS's dc:contributor
    // and Atom's contributor do: it has no `_source` to carry it.
    let own = &doc["items"][2];
    assert!(own.get("_source").is_none());
    assert_eq!(own["authors"], json!([{"name": "李华"}, {"name": "陈静"}]));
}

/// What a WeChat bridge is handed for the hostile articles and one written for the profile: a
/// title too long for WeChat, outside links, images, a cover.
#[test]
fn the_wechat_profile_matches_its_golden_file() {
    let s = settings();
    let mut articles = hostile();
    articles.insert(0, article(json!({
        "id": "wechat-3",
        "title": "江阴高新区氢能产业园今日开工，总投资五十亿元，将建设全国规模最大的加氢站网络",
        "summary": "江阴高新区氢能产业园今日开工。园区总投资五十亿元，规划建设制氢、储运、加注与燃料电池应用四大板块，首期工程预计明年投产。园区将引进龙头企业二十家以上，形成完整的氢能产业链。项目建成后预计年产值超过一百亿元，带动就业五千人，园区还将配套建设研发中心与人才公寓。",
        "content_html": "<p>据<a href=\"https://www.jyrb.example.com/a?id=1&amp;from=rss\">江阴日报</a>报道，园区<a href=\"/news/2.html\">二期</a>今日开工。</p><p><img src=\"/uploads/2024/site.jpg\" alt=\"工地\"></p><p>详见<a href=\"https://mp.weixin.qq.com/s/abc\">公众号此前报道</a>与<a href=\"https://www.jyrb.example.com/a?id=1&amp;from=rss\">原报道</a>。</p><script>track()</script>",
        "url": "https://www.kechuang.example.cn/news/wechat-3.html",
        "published_at": "2024-05-19T08:00:00+08:00",
        "updated_at": "2024-05-19T10:15:00+08:00",
        "image": "/uploads/2024/cover.png",
        "categories": ["hydrogen"], "region": "320281", "author": "王明"
    })));
    let key = FeedKey::parse("region/320000.wechat.json", None, &s).unwrap();
    let body = render(&describe(&s, &key, articles, latest_archive()), &s).unwrap();
    check_golden("region-320000.wechat.json", &body);

    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc["feed"],
        "http://127.0.0.1:8080/feeds/region/320000.wechat.json"
    );
    let item = &doc["items"][0];
    assert_eq!(
        item["title"],
        "江阴高新区氢能产业园今日开工，总投资五十亿元，…"
    );
    assert_eq!(item["title_cut"], true);
    assert_eq!(
        item["digest"],
        "江阴高新区氢能产业园今日开工。园区总投资五十亿元，规划建设制氢、储运、加注与燃料电池应用四大板块，首期工程预计明年投产。园区将引进龙头企业二十家以上，形成完整的氢能产业链。…"
    );
    assert_eq!(
        item["thumb_url"],
        "https://www.kechuang.example.cn/uploads/2024/cover.png"
    );
    assert_eq!(
        item["images"],
        json!(["https://www.kechuang.example.cn/uploads/2024/site.jpg"])
    );
    assert_eq!(item["content_cut"], false);
    // As the README's table says: the short title wins, whole; the author is the first one
    // credited (a reprint's original author, else its publisher; the own article's author,
    // never its editor).
    let fields = |i: usize| {
        let item = &doc["items"][i];
        (
            item["title"].clone(),
            item["title_cut"].clone(),
            item["author"].clone(),
        )
    };
    assert_eq!(fields(0).2, "王明");
    assert_eq!(
        fields(1),
        (json!("氢装上阵"), json!(false), json!("王明 & ]]>"))
    );
    assert_eq!(fields(2).2, "无锡日报");
    assert_eq!(fields(3).2, "李华");
    // The reprint's credit survives, its link a footnote like any other.
    let reprint = doc["items"][1]["content"].as_str().unwrap();
    assert!(
        reprint.contains("来源：江阴日报 &amp; 晚报<sup>[2]</sup>"),
        "{reprint}"
    );
}

#[test]
fn an_archive_is_marked_and_linked_to_its_neighbours_and_feed() {
    let s = settings();
    let key = FeedKey::parse("region/320000/archive/2024-05.atom", None, &s).unwrap();
    let archive = Archive {
        prev: Month::parse("2021-01"),
        next: Month::parse("2024-07"),
    };
    let body = render(&describe(&s, &key, hostile(), archive), &s).unwrap();
    check_golden("region-320000-archive-2024-05.atom", &body);
    let feed = atom_syndication::Feed::read_from(&body[..]).unwrap();
    let link = |rel: &str| {
        feed.links()
            .iter()
            .find(|l| l.rel() == rel)
            .map(|l| l.href().to_owned())
    };
    let base = "http://127.0.0.1:8080/feeds/region/320000";
    assert_eq!(
        link("self").unwrap(),
        format!("{base}/archive/2024-05.atom")
    );
    assert_eq!(link("current").unwrap(), format!("{base}.atom"));
    assert_eq!(
        link("prev-archive").unwrap(),
        format!("{base}/archive/2021-01.atom")
    );
    assert_eq!(
        link("next-archive").unwrap(),
        format!("{base}/archive/2024-07.atom")
    );
    assert!(feed.extensions()["fh"].contains_key("archive"));
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains("xmlns:fh=\"http://purl.org/syndication/history/1.0\""));
    assert!(!text.contains("sy:updatePeriod"), "archives are not polled");

    let rss_key = key.with_format(feedcast::feed::Format::Rss);
    let rss = render(&describe(&s, &rss_key, hostile(), archive), &s).unwrap();
    let rss_text = String::from_utf8(rss.to_vec()).unwrap();
    assert!(
        rss_text.contains("<fh:archive></fh:archive>") || rss_text.contains("<fh:archive/>"),
        "{rss_text}"
    );
    assert!(
        rss_text.contains(&format!(
            "href=\"{base}/archive/2021-01.rss\" rel=\"prev-archive\""
        )),
        "{rss_text}"
    );
}

#[test]
fn the_update_schedule_agrees_with_the_cache_policy() {
    let s = settings();
    let key = FeedKey::parse("category/parks.rss", None, &s).unwrap();
    let body = render(&describe(&s, &key, hostile(), latest_archive()), &s).unwrap();
    let channel = rss::Channel::read_from(&body[..]).unwrap();
    let minutes = s.caching.max_age.category / 60;
    assert_eq!(channel.ttl(), Some(minutes.to_string().as_str()));
    let sy = channel.syndication_ext().unwrap();
    assert_eq!(sy.frequency(), 3600 / s.caching.max_age.category);
}

#[test]
fn opml_writes_plain_text_with_character_references() {
    let s = common::settings_with(&[(r#"name = "园区""#, r#"name = "园区 & <开发区>""#)]);
    let opml = String::from_utf8(feedcast::render::opml(&s)).unwrap();
    assert!(
        opml.contains(r#"text="园区 &#x26; &#x3C;开发区&#x3E;""#),
        "{opml}"
    );
    // And an XML parser reads the characters back.
    let mut reader = quick_xml::Reader::from_str(&opml);
    let mut texts = Vec::new();
    loop {
        match reader.read_event().unwrap() {
            quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e) => {
                if let Some(text) = e.try_get_attribute("text").unwrap() {
                    texts.push(text.unescape_value().unwrap().into_owned());
                }
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    assert!(texts.iter().any(|t| t == "园区 & <开发区>"), "{texts:?}");
}
