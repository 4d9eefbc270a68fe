//! The toolkit the built-in channels are made of, for third-party channels:
//! fitting text and JSON under a platform's byte limit with a visible
//! marker, accumulating the results of a send fanned out over several
//! requests, reading params the way configs write them (one string or a
//! list, numbers as numeric strings), and caching an app's access token.
//!
//! These are the same functions the built-ins call, gathered here rather
//! than by making the modules they live in public: those modules (`text`,
//! `params`) also hold helpers tied to one channel's needs that are free to
//! change, while everything re-exported here is a supported, documented
//! surface. [`Fanout`] and [`TokenCache`] keep their homes in
//! [`channel`](crate::channel) and [`http`](crate::http) as well.
//!
//! A channel that fits its message and sends to several chats:
//!
//! ```
//! use alertkit::toolkit::{Fanout, fit_alert, fit_json};
//! use alertkit::{Alert, Receipt};
//!
//! const MAX_BODY: usize = 4_096;
//! let alert = Alert::new("disk full").body("x".repeat(10_000));
//! // Every part bounded first (a 30 KB title cannot crowd out the rest) ...
//! let (alert, notes) = fit_alert(&alert, MAX_BODY);
//! // ... then the body cut exactly, the keyword kept after the marker.
//! let fitted = fit_json(&alert.body, "\n#alert", MAX_BODY, |text| {
//!     serde_json::json!({"title": alert.title, "text": text})
//! })?;
//! assert!(fitted.bytes.len() <= MAX_BODY && fitted.omitted > 0);
//!
//! let mut out = Fanout::new(notes.into_iter().fold(Receipt::new(), Receipt::with_note));
//! for chat in ["c1", "c2"] {
//!     out.request();
//!     // (post `fitted.bytes` to `chat` here)
//!     out.delivered(1, Some(chat));
//! }
//! let receipt = out.finish()?;
//! assert_eq!((receipt.requests, receipt.message_id.as_deref()), (2, Some("c1")));
//! # Ok::<(), alertkit::Error>(())
//! ```

pub use crate::channel::Fanout;
pub use crate::http::{TOKEN_MARGIN, TokenCache, token_from, token_key};
pub use crate::params::{ids, num, one_or_many, opt_num, port};
pub use crate::text::{
    Fitted, cut_line, fit_alert, fit_json, fit_text, limit_chars, truncate_marked,
};
