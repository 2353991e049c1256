//! The endpoints of the tracking API, as decoding needs to tell them apart.

use lodestar_core::MessageKind;

/// Which endpoint a body was posted to: one of the six single-call routes
/// (`/v1/track`, …) or `/v1/batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/v1/track`: one track call.
    Track,
    /// `/v1/identify`: one identify call.
    Identify,
    /// `/v1/page`: one page call.
    Page,
    /// `/v1/screen`: one screen call.
    Screen,
    /// `/v1/group`: one group call.
    Group,
    /// `/v1/alias`: one alias call.
    Alias,
    /// `/v1/batch` (also reached as `/v1/import`): many calls of any type.
    Batch,
}

impl Route {
    /// Every route.
    pub const ALL: [Route; 7] = [
        Route::Track,
        Route::Identify,
        Route::Page,
        Route::Screen,
        Route::Group,
        Route::Alias,
        Route::Batch,
    ];

    /// The route of the last path segment (`track`, `batch`, …), exactly as the spec spells
    /// it. `import`, the spec's older name of the batch endpoint, is also the batch route.
    pub fn from_path_segment(segment: &str) -> Option<Route> {
        if segment == "import" {
            return Some(Route::Batch);
        }
        Route::ALL.into_iter().find(|r| r.as_str() == segment)
    }

    /// The path segment of the route (`track`, …, `batch`).
    pub fn as_str(self) -> &'static str {
        match self.kind() {
            Some(kind) => kind.as_str(),
            None => "batch",
        }
    }

    /// The kind of call a single-call route carries; `None` for the batch route.
    pub fn kind(self) -> Option<MessageKind> {
        match self {
            Route::Track => Some(MessageKind::Track),
            Route::Identify => Some(MessageKind::Identify),
            Route::Page => Some(MessageKind::Page),
            Route::Screen => Some(MessageKind::Screen),
            Route::Group => Some(MessageKind::Group),
            Route::Alias => Some(MessageKind::Alias),
            Route::Batch => None,
        }
    }

    /// The single-call route of `kind`.
    pub fn for_kind(kind: MessageKind) -> Route {
        match kind {
            MessageKind::Track => Route::Track,
            MessageKind::Identify => Route::Identify,
            MessageKind::Page => Route::Page,
            MessageKind::Screen => Route::Screen,
            MessageKind::Group => Route::Group,
            MessageKind::Alias => Route::Alias,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_name_routes() {
        assert_eq!(Route::from_path_segment("track"), Some(Route::Track));
        assert_eq!(Route::from_path_segment("identify"), Some(Route::Identify));
        assert_eq!(Route::from_path_segment("page"), Some(Route::Page));
        assert_eq!(Route::from_path_segment("screen"), Some(Route::Screen));
        assert_eq!(Route::from_path_segment("group"), Some(Route::Group));
        assert_eq!(Route::from_path_segment("alias"), Some(Route::Alias));
        assert_eq!(Route::from_path_segment("batch"), Some(Route::Batch));
        assert_eq!(Route::from_path_segment("import"), Some(Route::Batch));
        assert_eq!(Route::from_path_segment("Track"), None);
        assert_eq!(Route::from_path_segment("track/"), None);
        assert_eq!(Route::from_path_segment(""), None);
    }

    #[test]
    fn routes_and_kinds_correspond() {
        for route in Route::ALL {
            assert_eq!(Route::from_path_segment(route.as_str()), Some(route));
            if let Some(kind) = route.kind() {
                assert_eq!(Route::for_kind(kind), route);
                assert_eq!(kind.as_str(), route.as_str());
            }
        }
        assert_eq!(Route::Batch.kind(), None);
    }
}
