//! The dashboard (运营看板): its files are embedded in the binary and served at `/` and
//! `/app/…`. They need no build step (plain ES modules, Apache ECharts vendored); see
//! `crates/server/assets/README.md`.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// (path under /app/, content type, bytes).
const FILES: [(&str, &str, &[u8]); 7] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../assets/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app.js"),
    ),
    (
        "core.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/core.js"),
    ),
    (
        "segments.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/segments.js"),
    ),
    (
        "settings.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/settings.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/style.css"),
    ),
    (
        "vendor/echarts.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/echarts.min.js"),
    ),
];

fn file(path: &str) -> Response {
    match FILES.iter().find(|(p, _, _)| *p == path) {
        Some((p, kind, bytes)) => {
            // The vendored library never changes under its name; our files may with a release.
            let cache = if p.starts_with("vendor/") {
                "public, max-age=86400"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, *kind),
                    (header::CACHE_CONTROL, cache),
                ],
                *bytes,
            )
                .into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// `GET /`: the dashboard.
pub(crate) async fn index() -> Response {
    file("index.html")
}

/// `GET /app/{path}`: one of the dashboard's files.
pub(crate) async fn asset(Path(path): Path<String>) -> Response {
    file(&path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_served() {
        let page = std::str::from_utf8(FILES[0].2).unwrap();
        for src in [
            "/app/style.css",
            "/app/vendor/echarts.min.js",
            "/app/app.js",
        ] {
            assert!(page.contains(src), "{src}");
            let path = src.trim_start_matches("/app/");
            assert_eq!(file(path).status(), StatusCode::OK, "{path}");
        }
        assert_eq!(file("../Cargo.toml").status(), StatusCode::NOT_FOUND);
    }
}
