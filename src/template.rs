//! Rendering alerts to text with [minijinja](https://docs.rs/minijinja).
//!
//! Every channel renders its text fields (title, markdown, plain text, HTML)
//! through a [`Templates`] set. The built-in templates show a Flink job alert
//! well in Chinese and English clients; an instance or group can replace any
//! of them. Payload JSON is never templated: templates fill text fields only,
//! and channels build payloads with serde.
//!
//! # Template context
//!
//! | variable | type | meaning |
//! |---|---|---|
//! | `title`, `body` | string | the alert's title and body (`""` when absent) |
//! | `severity`, `state` | string | `info`/`warning`/`error`/`critical`, `firing`/`resolved` |
//! | `resolved` | bool | `state == "resolved"` |
//! | `severity_label`, `state_label` | string | the same, translated (`严重`, `Critical`) |
//! | `severity_color` | string | `red`/`orange`/`blue`/`green` (resolved is green) |
//! | `job` | map or none | `name`, `id`, `status`, `cluster`, `url`, `started_at`, `ended_at`, `duration`, `error` (each none when absent) |
//! | `facts` | list of `[name, value]` | job facts then the alert's `fields`, labels translated: the rows of tables and cards |
//! | `facts_markdown` | string | `facts` as Markdown lines, `- **name**: value`, escaped (what the built-in markdown shows) |
//! | `links_markdown` | string | `links` as `[title](url)` joined by ` \| ` |
//! | `facts_text`, `links_text` | string | the same as plain `name: value` and `title: url` lines |
//! | `fields` | list of `[name, value]` | the alert's own fields, in order |
//! | `labels` | map | the alert's labels |
//! | `links` | list of `{title, url}` | links, the job URL first when set |
//! | `occurred_at` | string or none | `YYYY-MM-DD HH:MM:SS UTC` |
//! | `platform` | string | the channel kind rendering (`dingtalk`, `wecom`, ...) |
//! | `lang` | string | `en` or `zh` |
//! | `t` | map | translated words: `t.job`, `t.status`, `t.error`, ... |
//!
//! Filters: `md_escape` (escape Markdown punctuation, break tags and
//! links), `neutralize` (break tags and links only: for bodies), `human_duration`
//! (seconds → `1h 2m 3s`), `first_line`, `limit(n)` (at most n characters,
//! with `…`). Undefined variables are errors (strict mode), every render has
//! a fuel limit so a runaway loop fails instead of hanging, and templates are
//! compiled when the instance is built, so a syntax error names the instance,
//! the template and the line before anything is sent.
//!
//! The built-in templates are minijinja sources too (start from them to
//! write your own), but a format left at its default is rendered by Rust
//! code that writes the very same text, several times faster: most
//! instances override nothing, and every dispatch renders for each member.
//!
//! ```
//! use alertkit::template::{Format, Templates, TemplateOverrides};
//! use alertkit::{Alert, JobInfo, JobStatus};
//!
//! let alert = Alert::new("orders-etl FAILED")
//!     .job(JobInfo::new("orders-etl").status(JobStatus::Failed));
//! let md = Templates::default().render(Format::Markdown, &alert, "dingtalk").unwrap();
//! assert!(md.contains("orders-etl FAILED"));
//!
//! let custom = Templates::with_overrides(
//!     &TemplateOverrides::default().template(Format::Text, "{{ job.name }} is {{ job.status }}"),
//! ).unwrap();
//! assert_eq!(custom.render(Format::Text, &alert, "email").unwrap(), "orders-etl is FAILED");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertState, Severity};
use crate::error::{Error, ErrorKind, Result};

mod builtin;

/// Fuel for one render: a few hundred for the built-in templates; enough for
/// any honest template, and a runaway loop stops after ~100k steps.
pub const FUEL: u64 = 100_000;

/// The most one render may write, in bytes (4 MiB): a template that writes
/// more (a loop printing a large body, a huge `join`) fails with a
/// [`ErrorKind::Template`] error as soon as it passes this, while
/// rendering, rather than after. The string-building filters (`join`,
/// `replace`, `indent`) refuse results past it before building them.
///
/// Not bounded per operation: the `~`, `+` and `*` operators (minijinja caps
/// one string repetition at 100 MB); a template that concatenates a string
/// to itself over and over can still build large strings within its fuel.
pub const MAX_RENDER: usize = 4 << 20;

/// The text formats a channel can ask for.
///
/// ```
/// use alertkit::Alert;
/// use alertkit::template::{Format, Templates};
/// let alert = Alert::new("disk full").body("/var at 97%");
/// let t = Templates::default();
/// let title = t.render(Format::Title, &alert, "email")?;
/// assert_eq!(title, "[Error] disk full");
/// assert!(t.render(Format::Html, &alert, "email")?.starts_with("<div"));
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// One line: subjects, card headers, DingTalk markdown titles.
    Title,
    /// Plain text.
    Text,
    /// Markdown (DingTalk, WeCom, Feishu `lark_md`).
    Markdown,
    /// HTML, auto-escaped (email).
    Html,
}

impl Format {
    const ALL: [Format; 4] = [Format::Title, Format::Text, Format::Markdown, Format::Html];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Format::Title => "title",
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }
}

/// User templates replacing the built-in ones; `None` keeps the default.
/// In config, the `templates` object of an instance or group:
/// `{"title": "...", "text": "...", "markdown": "...", "html": "...", "lang": "zh"}`.
///
/// ```
/// use alertkit::InstanceConfig;
/// use alertkit::template::{Format, Lang, TemplateOverrides};
/// let ops: InstanceConfig = serde_json::from_str(r#"{"name": "ops", "type": "dingtalk",
///     "templates": {"title": "[{{ severity }}] {{ title }}", "lang": "zh"}}"#).unwrap();
/// assert_eq!(ops.templates, TemplateOverrides::default()
///     .template(Format::Title, "[{{ severity }}] {{ title }}")
///     .lang(Lang::Zh));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct TemplateOverrides {
    /// Title template.
    pub title: Option<String>,
    /// Plain-text template.
    pub text: Option<String>,
    /// Markdown template.
    pub markdown: Option<String>,
    /// HTML template (auto-escaped).
    pub html: Option<String>,
    /// Language of the built-in labels: `en` (default) or `zh`.
    pub lang: Option<Lang>,
}

impl TemplateOverrides {
    /// Replaces the template of `format`.
    ///
    /// ```
    /// use alertkit::Alert;
    /// use alertkit::template::{Format, TemplateOverrides, Templates};
    /// let overrides = TemplateOverrides::default().template(Format::Text, "{{ title | upper }} ({{ platform }})");
    /// let t = Templates::with_overrides(&overrides)?;
    /// assert_eq!(t.render(Format::Text, &Alert::new("disk full"), "webhook")?, "DISK FULL (webhook)");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn template(mut self, format: Format, source: impl Into<String>) -> Self {
        let slot = match format {
            Format::Title => &mut self.title,
            Format::Text => &mut self.text,
            Format::Markdown => &mut self.markdown,
            Format::Html => &mut self.html,
        };
        *slot = Some(source.into());
        self
    }

    /// Sets the language of the built-in labels.
    ///
    /// ```
    /// use alertkit::{Alert, Severity};
    /// use alertkit::template::{Format, Lang, TemplateOverrides, Templates};
    /// let t = Templates::with_overrides(&TemplateOverrides::default().lang(Lang::Zh))?;
    /// let alert = Alert::new("磁盘已满").severity(Severity::Critical);
    /// assert_eq!(t.render(Format::Title, &alert, "dingtalk")?, "[严重] 磁盘已满");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn lang(mut self, lang: Lang) -> Self {
        self.lang = Some(lang);
        self
    }

    /// Replaces the template of `format`.
    #[deprecated(
        since = "0.1.0",
        note = "renamed `template` (the crate's builder naming)"
    )]
    pub fn with(self, format: Format, source: impl Into<String>) -> Self {
        self.template(format, source)
    }

    /// Sets the language of the built-in labels.
    #[deprecated(since = "0.1.0", note = "renamed `lang` (the crate's builder naming)")]
    pub fn with_lang(self, lang: Lang) -> Self {
        self.lang(lang)
    }

    /// Whether nothing is overridden.
    ///
    /// ```
    /// use alertkit::template::{Lang, TemplateOverrides};
    /// assert!(TemplateOverrides::default().is_empty());
    /// assert!(!TemplateOverrides::default().lang(Lang::En).is_empty()); // set, even to the default
    /// ```
    pub fn is_empty(&self) -> bool {
        *self == TemplateOverrides::default()
    }

    /// `self` with every unset entry taken from `fallback` (instance over group).
    ///
    /// ```
    /// use alertkit::template::{Format, Lang, TemplateOverrides};
    /// let group = TemplateOverrides::default().template(Format::Title, "{{ title }}").lang(Lang::Zh);
    /// let instance = TemplateOverrides::default().template(Format::Title, "[ops] {{ title }}");
    /// let merged = instance.or(&group);
    /// assert_eq!(merged.title.as_deref(), Some("[ops] {{ title }}")); // the instance's own wins
    /// assert_eq!(merged.lang, Some(Lang::Zh)); // the rest comes from the group
    /// ```
    pub fn or(&self, fallback: &TemplateOverrides) -> TemplateOverrides {
        TemplateOverrides {
            title: self.title.clone().or_else(|| fallback.title.clone()),
            text: self.text.clone().or_else(|| fallback.text.clone()),
            markdown: self.markdown.clone().or_else(|| fallback.markdown.clone()),
            html: self.html.clone().or_else(|| fallback.html.clone()),
            lang: self.lang.or(fallback.lang),
        }
    }
}

/// Language of the built-in labels.
///
/// ```
/// use alertkit::template::Lang;
/// assert_eq!(serde_json::from_str::<Lang>(r#""zh""#).unwrap(), Lang::Zh);
/// assert_eq!(Lang::default(), Lang::En);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Lang {
    /// English.
    #[default]
    En,
    /// Simplified Chinese.
    Zh,
}

const DEFAULT_TITLE: &str =
    "{% if resolved %}[{{ state_label }}] {% else %}[{{ severity_label }}] {% endif %}{{ title }}";

const DEFAULT_TEXT: &str = r#"{% if resolved %}[{{ state_label }}]{% else %}[{{ severity_label }}]{% endif %} {{ title }}
{% if body %}
{{ body }}
{% endif %}
{{ facts_text }}
{%- if job and job.error %}
{{ t.error }}: {{ job.error | limit(1000) }}
{% endif %}
{%- if links %}
{{ links_text }}
{%- endif %}"#;

const DEFAULT_MARKDOWN: &str = r#"{% if platform == "feishu_card" -%}
{# A Feishu card shows the title in its header, facts as fields and links as buttons. #}
{{ body | neutralize }}
{%- if job and job.error %}

**{{ t.error }}**: {{ job.error | first_line | limit(300) | md_escape }}
{%- endif %}
{%- else -%}
{% if platform == "wecom" -%}
### <font color="{{ wecom_color }}">{{ state_label if resolved else severity_label }}</font> {{ title | md_escape }}
{%- else -%}
### {{ "✅" if resolved else severity_icon }} {{ title | md_escape }}
{%- endif %}
{% if body %}
{{ body | neutralize }}
{% endif %}
{{ facts_markdown }}
{%- if job and job.error %}
**{{ t.error }}**: {{ job.error | first_line | limit(300) | md_escape }}
{% endif %}
{%- if links %}
{{ links_markdown }}
{% endif %}
{%- endif %}"#;

const DEFAULT_HTML: &str = r#"<div style="font-family:-apple-system,'PingFang SC','Microsoft YaHei',Arial,sans-serif;font-size:14px">
<h3 style="margin:0 0 8px;color:{{ html_color }}">[{{ state_label if resolved else severity_label }}] {{ title }}</h3>
{% if body %}<p style="white-space:pre-wrap">{{ body }}</p>
{% endif %}{% if facts %}<table style="border-collapse:collapse" cellpadding="6" border="1">
{% for f in facts %}<tr><th align="left">{{ f[0] }}</th><td>{{ f[1] }}</td></tr>
{% endfor %}</table>
{% endif %}{% if job and job.error %}<p><b>{{ t.error }}</b></p><pre style="white-space:pre-wrap">{{ job.error | limit(4000) }}</pre>
{% endif %}{% for link in links %}{% if link.url is web_url %}<a href="{{ link.url }}">{{ link.title }}</a>{% else %}{{ link.title }}: {{ link.url }}{% endif %}{% if not loop.last %} | {% endif %}{% endfor %}
</div>"#;

/// A compiled set of the four templates. Cheap to clone; the built-in set is
/// shared by every instance that overrides nothing.
///
/// ```
/// use alertkit::{Alert, JobInfo};
/// use alertkit::template::{Format, TemplateOverrides, Templates};
/// let alert = Alert::new("orders-etl FAILED").job(JobInfo::new("orders-etl").cluster("prod-yarn"));
/// let t = Templates::with_overrides(
///     &TemplateOverrides::default().template(Format::Markdown, "**{{ title }}** on {{ job.cluster }}"),
/// )?;
/// let [title, md] = t.render_many([Format::Title, Format::Markdown], &alert, "wecom")?;
/// assert_eq!(title, "[Error] orders-etl FAILED"); // not overridden: built in
/// assert_eq!(md, "**orders-etl FAILED** on prod-yarn");
/// # Ok::<(), alertkit::Error>(())
/// ```
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    lang: Lang,
    /// Per [`Format`]: not overridden, so rendered by [`builtin`] (the same
    /// text as the minijinja source, several times faster).
    builtin: [bool; 4],
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("lang", &self.lang)
            .finish_non_exhaustive()
    }
}

impl Default for Templates {
    fn default() -> Self {
        static DEFAULT: OnceLock<Arc<Environment<'static>>> = OnceLock::new();
        let env = DEFAULT.get_or_init(|| {
            // The built-in templates are tested to compile; an empty override set cannot fail.
            Arc::new(
                build_env(&TemplateOverrides::default()).unwrap_or_else(|_| Environment::new()),
            )
        });
        Templates {
            env: env.clone(),
            lang: Lang::En,
            builtin: [true; 4],
        }
    }
}

fn build_env(o: &TemplateOverrides) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_auto_escape_callback(|name| {
        if name == "html" {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    // The string filters hand back their input untouched (no copy) when
    // there is nothing to change, which is the common case.
    env.add_filter("md_escape", |v: Value| match v.as_str() {
        Some(s) if !s.bytes().any(is_md_special) => v,
        Some(s) => Value::from(md_escape(s)),
        None => Value::from(md_escape(&v.to_string())),
    });
    env.add_filter("neutralize", |v: Value| match v.as_str() {
        Some(s) if !needs_neutralizing(s) => v,
        Some(s) => Value::from(neutralize(s).into_owned()),
        None => Value::from(neutralize(&v.to_string()).into_owned()),
    });
    env.add_test("web_url", |v: &str| is_web_url(v));
    add_bounded_filters(&mut env);
    env.add_filter("human_duration", |secs: i64| human_duration(secs));
    env.add_filter("first_line", |v: Value| match v.as_str() {
        Some(s) if !s.contains(['\n', '\r']) => v,
        Some(s) => Value::from(first_line(s)),
        None => Value::from(v.to_string()),
    });
    env.add_filter("limit", |v: Value, n: usize| {
        match v.as_str().map(|s| limit(s, n)) {
            Some(std::borrow::Cow::Borrowed(_)) => v,
            Some(std::borrow::Cow::Owned(cut)) => Value::from(cut),
            None => Value::from(limit(&v.to_string(), n).into_owned()),
        }
    });
    let entries = [
        (Format::Title, &o.title, DEFAULT_TITLE),
        (Format::Text, &o.text, DEFAULT_TEXT),
        (Format::Markdown, &o.markdown, DEFAULT_MARKDOWN),
        (Format::Html, &o.html, DEFAULT_HTML),
    ];
    for (format, user, default) in entries {
        let source = user.clone().unwrap_or_else(|| default.to_owned());
        env.add_template_owned(format.name(), source).map_err(|e| {
            Error::new(ErrorKind::Template, describe(&e))
                .with_field(format!("templates.{}", format.name()))
                .with_retryable(false)
        })?;
    }
    Ok(env)
}

fn too_large(what: &str) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("{what} would be larger than the render limit of {MAX_RENDER} bytes"),
    )
}

/// `join`, `replace` and `indent` as minijinja has them, refusing a result
/// over [`MAX_RENDER`] before building it.
fn add_bounded_filters(env: &mut Environment<'static>) {
    use minijinja::State;
    use minijinja::value::{Kwargs, StringInput};
    env.add_filter(
        "join",
        |state: &mut State,
         value: &Value,
         joiner: Option<StringInput<'_>>,
         attribute: Option<&str>,
         kwargs: Kwargs|
         -> std::result::Result<Value, minijinja::Error> {
            let sep = joiner.as_ref().map_or(0, |j| j.as_str().len());
            if let Ok(items) = value.try_iter() {
                let mut total = 0usize;
                for (i, item) in items.enumerate() {
                    let len = item
                        .as_str()
                        .map_or_else(|| item.to_string().len(), str::len);
                    total = total
                        .saturating_add(len)
                        .saturating_add(if i > 0 { sep } else { 0 });
                    if total > MAX_RENDER {
                        return Err(too_large("join"));
                    }
                }
            }
            minijinja::filters::join(state, value, joiner, attribute, kwargs)
        },
    );
    env.add_filter(
        "replace",
        |state: &mut State,
         value: StringInput<'_>,
         from: StringInput<'_>,
         to: StringInput<'_>|
         -> std::result::Result<Value, minijinja::Error> {
            let (s, f, t) = (value.as_str(), from.as_str(), to.as_str());
            let n = if f.is_empty() {
                s.chars().count().saturating_add(1)
            } else {
                s.matches(f).count()
            };
            let grown = n.saturating_mul(t.len().saturating_sub(f.len()));
            if s.len().saturating_add(grown) > MAX_RENDER {
                return Err(too_large("replace"));
            }
            minijinja::filters::replace(state, value, from, to)
        },
    );
    env.add_filter(
        "indent",
        |value: StringInput<'_>,
         width: Option<usize>,
         first: Option<bool>,
         blank: Option<bool>,
         kwargs: Kwargs|
         -> std::result::Result<Value, minijinja::Error> {
            let w = width
                .or_else(|| kwargs.get::<Option<usize>>("width").ok().flatten())
                .unwrap_or(4);
            let lines = value.as_str().lines().count().saturating_add(1);
            if value.as_str().len().saturating_add(lines.saturating_mul(w)) > MAX_RENDER {
                return Err(too_large("indent"));
            }
            minijinja::filters::indent(value, width, first, blank, kwargs)
        },
    );
}

/// An output that fails once more than [`MAX_RENDER`] bytes were written.
struct Capped {
    out: Vec<u8>,
}

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len().saturating_add(buf.len()) > MAX_RENDER {
            return Err(std::io::Error::other("render limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `tmpl` into at most [`MAX_RENDER`] bytes.
fn render_capped(
    tmpl: &minijinja::Template<'_, '_>,
    ctx: &minijinja::Value,
) -> std::result::Result<String, String> {
    let mut w = Capped {
        out: Vec::with_capacity(1024),
    };
    match tmpl.render_captured_to(ctx.clone(), &mut w) {
        Ok(_) => String::from_utf8(w.out).map_err(|_| "the output is not UTF-8".to_owned()),
        Err(e)
            if w.out.len() + 1 >= MAX_RENDER || e.kind() == minijinja::ErrorKind::WriteFailure =>
        {
            Err(format!(
                "the output would be larger than the render limit of {MAX_RENDER} bytes"
            ))
        }
        Err(e) => Err(describe(&e)),
    }
}

fn describe(e: &minijinja::Error) -> String {
    let mut s = e.kind().to_string();
    if let Some(detail) = e.detail() {
        s.push_str(": ");
        s.push_str(detail);
    }
    if let Some(line) = e.line() {
        s.push_str(&format!(" (line {line})"));
    }
    s
}

impl Templates {
    /// Compiles the built-in templates with `overrides` applied. A syntax
    /// error is an [`ErrorKind::Template`] error naming the template
    /// (`templates.markdown`) and the line.
    ///
    /// ```
    /// use alertkit::ErrorKind;
    /// use alertkit::template::{Format, TemplateOverrides, Templates};
    /// let ok = TemplateOverrides::default().template(Format::Text, "{{ title }}");
    /// assert!(Templates::with_overrides(&ok).is_ok());
    /// let broken = TemplateOverrides::default().template(Format::Markdown, "line 1\n{% if title %}unclosed");
    /// let e = Templates::with_overrides(&broken).unwrap_err();
    /// assert_eq!((e.kind(), e.field()), (ErrorKind::Template, Some("templates.markdown")));
    /// assert!(e.message().contains("line"), "{e}");
    /// ```
    pub fn with_overrides(overrides: &TemplateOverrides) -> Result<Self> {
        let lang = overrides.lang.unwrap_or_default();
        let only_lang = TemplateOverrides {
            lang: None,
            ..overrides.clone()
        }
        .is_empty();
        if only_lang {
            return Ok(Templates {
                lang,
                ..Templates::default()
            });
        }
        Ok(Templates {
            env: Arc::new(build_env(overrides)?),
            lang,
            builtin: [
                overrides.title.is_none(),
                overrides.text.is_none(),
                overrides.markdown.is_none(),
                overrides.html.is_none(),
            ],
        })
    }

    /// The language of the built-in labels.
    ///
    /// ```
    /// use alertkit::template::{Lang, TemplateOverrides, Templates};
    /// assert_eq!(Templates::default().lang(), Lang::En);
    /// let zh = Templates::with_overrides(&TemplateOverrides::default().lang(Lang::Zh))?;
    /// assert_eq!(zh.lang(), Lang::Zh);
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// Renders `alert` in `format` as the channel `platform` would send it.
    /// Blank-line runs are collapsed and the result trimmed.
    ///
    /// ```
    /// use alertkit::Alert;
    /// use alertkit::template::{Format, Templates};
    /// let alert = Alert::new("disk full").field("Host", "db-1");
    /// let text = Templates::default().render(Format::Text, &alert, "email")?;
    /// assert_eq!(text, "[Error] disk full\n\nHost: db-1");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn render(&self, format: Format, alert: &Alert, platform: &str) -> Result<String> {
        let [out] = self.render_many([format], alert, platform)?;
        Ok(out)
    }

    /// Renders several formats of one alert (cheaper than one
    /// [`render`](Templates::render) each): what channels with a title and
    /// a body use.
    ///
    /// ```
    /// use alertkit::Alert;
    /// use alertkit::template::{Format, Templates};
    /// let alert = Alert::new("disk full").body("db-1 at 97%");
    /// let [subject, html] = Templates::default().render_many([Format::Title, Format::Html], &alert, "email")?;
    /// assert_eq!(subject, "[Error] disk full");
    /// assert!(html.contains("<p style=\"white-space:pre-wrap\">db-1 at 97%</p>"));
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn render_many<const N: usize>(
        &self,
        formats: [Format; N],
        alert: &Alert,
        platform: &str,
    ) -> Result<[String; N]> {
        // Each is built on first use, once for all the formats.
        let (mut view, mut ctx) = (None, None);
        let mut out: [String; N] = std::array::from_fn(|_| String::new());
        for (slot, f) in out.iter_mut().zip(formats) {
            *slot = if self.builtin[f.index()] {
                let view = view.get_or_insert_with(|| builtin::View::new(alert, self.lang));
                tidy(view.render(f, platform), f == Format::Title)
            } else {
                let ctx = ctx.get_or_insert_with(|| context_value(alert, platform, self.lang));
                self.render_ctx(f, ctx)?
            };
        }
        Ok(out)
    }

    /// Renders the title, text, markdown and HTML of `alert` at once: what an
    /// admin UI's preview shows.
    ///
    /// ```
    /// use alertkit::Alert;
    /// use alertkit::template::Templates;
    /// let preview = Templates::default().preview(&Alert::new("disk full"), "dingtalk")?;
    /// assert_eq!(preview.keys().copied().collect::<Vec<_>>(), ["html", "markdown", "text", "title"]);
    /// assert_eq!(preview["title"], "[Error] disk full");
    /// # Ok::<(), alertkit::Error>(())
    /// ```
    pub fn preview(&self, alert: &Alert, platform: &str) -> Result<BTreeMap<&'static str, String>> {
        let all = self.render_many(Format::ALL, alert, platform)?;
        Ok(Format::ALL.iter().map(|f| f.name()).zip(all).collect())
    }

    /// [`render`](Templates::render) through minijinja even where the
    /// built-in renderer would serve: what that renderer is tested against.
    #[cfg(test)]
    pub(crate) fn render_minijinja(
        &self,
        format: Format,
        alert: &Alert,
        platform: &str,
    ) -> Result<String> {
        self.render_ctx(format, &context_value(alert, platform, self.lang))
    }

    fn render_ctx(&self, format: Format, ctx: &minijinja::Value) -> Result<String> {
        let tmpl = self
            .env
            .get_template(format.name())
            .map_err(|e| Error::new(ErrorKind::Template, describe(&e)).with_retryable(false))?;
        let out = render_capped(&tmpl, ctx).map_err(|e| {
            Error::new(ErrorKind::Template, e)
                .with_field(format!("templates.{}", format.name()))
                .with_retryable(false)
        })?;
        Ok(tidy(out, format == Format::Title))
    }
}

/// Templates compiled from the string leaves of a JSON document (a webhook
/// body): each leaf holding `{{` or `{%` is a template with the documented
/// context, rendered into that leaf's string, so no value can break out of
/// its JSON string. Leaves without template syntax are kept as they are.
pub(crate) struct JsonTemplate {
    doc: serde_json::Value,
    env: Environment<'static>,
    lang: Lang,
}

impl std::fmt::Debug for JsonTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonTemplate")
            .field("doc", &self.doc)
            .finish_non_exhaustive()
    }
}

impl JsonTemplate {
    /// Compiles every templated leaf of `doc`; `field` names the param in
    /// errors. Leaves may `{% include "text" %}` (or `title`, `markdown`,
    /// `html`): the instance's own templates.
    pub(crate) fn compile(doc: serde_json::Value, field: &str, base: &Templates) -> Result<Self> {
        let mut env = (*base.env).clone();
        let lang = base.lang;
        let mut leaves = Vec::new();
        collect_leaves(&doc, String::new(), &mut leaves);
        for (pointer, source) in leaves {
            env.add_template_owned(pointer.clone(), source)
                .map_err(|e| {
                    Error::new(ErrorKind::Template, describe(&e))
                        .with_field(format!("{field}{pointer}"))
                        .with_retryable(false)
                })?;
        }
        Ok(JsonTemplate { doc, env, lang })
    }

    /// The document with every templated leaf rendered for `alert`.
    pub(crate) fn render(&self, alert: &Alert, platform: &str) -> Result<serde_json::Value> {
        let ctx = context_value(alert, platform, self.lang);
        let mut out = self.doc.clone();
        self.fill(&mut out, String::new(), &ctx)?;
        Ok(out)
    }

    fn fill(
        &self,
        v: &mut serde_json::Value,
        pointer: String,
        ctx: &minijinja::Value,
    ) -> Result<()> {
        match v {
            serde_json::Value::String(s) if is_template(s) => {
                let t = self.env.get_template(&pointer).map_err(|e| {
                    Error::new(ErrorKind::Template, describe(&e)).with_retryable(false)
                })?;
                *s = render_capped(&t, ctx).map_err(|e| {
                    Error::new(ErrorKind::Template, e)
                        .with_field(pointer)
                        .with_retryable(false)
                })?;
            }
            serde_json::Value::Array(items) => {
                for (i, x) in items.iter_mut().enumerate() {
                    self.fill(x, format!("{pointer}/{i}"), ctx)?;
                }
            }
            serde_json::Value::Object(map) => {
                for (k, x) in map.iter_mut() {
                    self.fill(x, format!("{pointer}/{}", escape_pointer(k)), ctx)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn is_template(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn collect_leaves(v: &serde_json::Value, pointer: String, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) if is_template(s) => out.push((pointer, s.clone())),
        serde_json::Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                collect_leaves(x, format!("{pointer}/{i}"), out);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, x) in map {
                collect_leaves(x, format!("{pointer}/{}", escape_pointer(k)), out);
            }
        }
        _ => {}
    }
}

/// Trims trailing spaces, collapses runs of blank lines, trims the ends; a
/// title becomes one line.
fn tidy(s: String, one_line: bool) -> String {
    if is_tidy(&s, one_line) {
        s
    } else {
        tidy_copy(&s, one_line)
    }
}

/// [`tidy`], always into a new string.
fn tidy_copy(s: &str, one_line: bool) -> String {
    if one_line {
        return s.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

/// Whether [`tidy_copy`] would give `s` back unchanged (the common case, checked
/// without copying): no whitespace at the ends, and on one line no
/// whitespace but single spaces, else none before a line break and no two
/// blank lines in a row.
fn is_tidy(s: &str, one_line: bool) -> bool {
    if s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return false;
    }
    if one_line {
        let mut prev = 'x';
        return s.chars().all(|c| {
            let ok = !c.is_whitespace() || (c == ' ' && prev != ' ');
            prev = c;
            ok
        });
    }
    // Only the line breaks and the character before each need a look.
    let (mut run, mut last) = (0, usize::MAX);
    for (at, _) in s.match_indices('\n') {
        run = if last.wrapping_add(1) == at {
            run + 1
        } else {
            1
        };
        let before = s[..at].chars().next_back();
        if run > 2 || before.is_some_and(|c| c.is_whitespace() && c != '\n') {
            return false;
        }
        last = at;
    }
    true
}

/// The bytes Markdown treats as syntax (all ASCII), as a lookup table
/// indexed by any byte.
const MD_SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let special = b"\\`*_[]#<>|~";
    let mut i = 0;
    while i < special.len() {
        table[special[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_md_special(b: u8) -> bool {
    MD_SPECIAL[usize::from(b)]
}

/// A zero-width space: put after a `<` or between `]` and `(`, it breaks a
/// tag (`<at id=all>`, `<@user>`, `<font>`) or a link (`[x](url)`,
/// `![img](url)`) on every platform's parser, whether or not it honours
/// backslash escapes, and shows nothing.
pub const BREAK: char = '\u{200B}';

/// Escapes the characters Markdown treats as syntax with a backslash, and
/// breaks tags and links with a zero-width space (see [`BREAK`]), so that
/// no alert text becomes a mention, a link or markup on a platform that
/// ignores backslashes.
///
/// ```
/// assert_eq!(alertkit::template::md_escape("a_b <at id=all>"), "a\\_b \\<\u{200B}at id=all\\>");
/// ```
pub fn md_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_md_escaped(&mut out, s);
    out
}

/// [`md_escape`], borrowing `s` when there is nothing to escape.
pub(crate) fn md_escape_cow(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().any(is_md_special) {
        std::borrow::Cow::Owned(md_escape(s))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn push_md_escaped(out: &mut String, s: &str) {
    // The special characters are ASCII, so cutting at them never splits a
    // character: copy the runs between them whole.
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if is_md_special(b) {
            out.push_str(&s[start..i]);
            out.push('\\');
            out.push(char::from(b));
            if b == b'<' || (b == b']' && bytes.get(i + 1) == Some(&b'(')) {
                out.push(BREAK);
            }
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
}

/// Whether [`neutralize`] changes `s`.
fn needs_neutralizing(s: &str) -> bool {
    s.as_bytes().contains(&b'<') || s.contains("](")
}

/// Alert text for a Markdown body, its formatting kept but its tags and
/// links broken with a zero-width space ([`BREAK`]): `<at id=all>`,
/// `<@user>`, `<font>` and `[x](url)` / `![img](url)` show as text.
///
/// ```
/// use alertkit::template::neutralize;
/// assert_eq!(neutralize("**bold** <at id=all></at> [x](https://evil)"),
///            "**bold** <\u{200B}at id=all><\u{200B}/at> [x]\u{200B}(https://evil)");
/// assert_eq!(neutralize("plain"), "plain");
/// ```
pub fn neutralize(s: &str) -> std::borrow::Cow<'_, str> {
    if !needs_neutralizing(s) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    push_neutralized(&mut out, s);
    std::borrow::Cow::Owned(out)
}

/// [`neutralize`] on an owned string, without a copy when nothing changes.
pub(crate) fn neutralized(s: String) -> String {
    if needs_neutralizing(&s) {
        neutralize(&s).into_owned()
    } else {
        s
    }
}

pub(crate) fn push_neutralized(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let cut = b == b'<' || (b == b']' && bytes.get(i + 1) == Some(&b'('));
        if cut {
            out.push_str(&s[start..=i]);
            out.push(BREAK);
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
}

/// Whether `url` may be a link: `http`/`https` only (a `javascript:` or
/// `data:` URL is shown as text, never as a link or button).
///
/// ```
/// use alertkit::template::is_web_url;
/// assert!(is_web_url("https://flink.example/#/job/a1b2"));
/// assert!(is_web_url("HTTP://intranet/runbook"));
/// assert!(!is_web_url("javascript:alert(1)"));
/// assert!(!is_web_url("ftp://files.example/log"));
/// ```
pub fn is_web_url(url: &str) -> bool {
    let lower = url
        .trim_start()
        .get(..8)
        .unwrap_or(url)
        .to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// `url` with the characters that end a Markdown link destination
/// (`(`, `)`, space, `<`, `>`) percent-encoded.
fn push_link_url(out: &mut String, url: &str) {
    for c in url.chars() {
        match c {
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            ' ' => out.push_str("%20"),
            '<' => out.push_str("%3C"),
            '>' => out.push_str("%3E"),
            '\n' | '\r' | '\t' => {}
            c => out.push(c),
        }
    }
}

/// The `first_line` filter: `s` up to its first line break.
fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// The `limit(n)` filter: at most `n` characters, `…` marking a cut.
fn limit(s: &str, n: usize) -> std::borrow::Cow<'_, str> {
    if s.len() <= n {
        std::borrow::Cow::Borrowed(s)
    } else {
        std::borrow::Cow::Owned(crate::text::limit_chars(s, n))
    }
}

/// `3723` → `1h 2m 3s`; `59` → `59s`; `90061` → `1d 1h 1m 1s`.
///
/// ```
/// use alertkit::template::human_duration;
/// assert_eq!(human_duration(3723), "1h 2m 3s");
/// assert_eq!(human_duration(3601), "1h 0m 1s");
/// assert_eq!(human_duration(-5), "0s");
/// ```
pub fn human_duration(secs: i64) -> String {
    let mut out = String::new();
    let _ = write_duration(&mut out, secs);
    out
}

/// [`human_duration`] into `out`: the units from the largest non-zero one
/// to the smallest non-zero one, zeros between them kept (`1h 0m 1s`).
fn write_duration(out: &mut impl std::fmt::Write, secs: i64) -> std::fmt::Result {
    if secs <= 0 {
        return out.write_str("0s");
    }
    let units = [
        (secs / 86_400, 'd'),
        (secs / 3_600 % 24, 'h'),
        (secs / 60 % 60, 'm'),
        (secs % 60, 's'),
    ];
    let first = units.iter().position(|u| u.0 > 0).unwrap_or(3);
    let last = units.iter().rposition(|u| u.0 > 0).unwrap_or(3);
    for (i, (n, unit)) in units[first..=last].iter().enumerate() {
        let sep = if i > 0 { " " } else { "" };
        write!(out, "{sep}{n}{unit}")?;
    }
    Ok(())
}

/// A short string kept inline: the formatted times and durations of a
/// render, which then allocate nothing.
#[derive(Clone, Copy)]
struct Inline {
    buf: [u8; 40],
    len: usize,
}

impl Inline {
    fn new(write: impl FnOnce(&mut Inline) -> std::fmt::Result) -> Self {
        let mut s = Inline {
            buf: [0; 40],
            len: 0,
        };
        // Everything written here is far shorter than the buffer; were it
        // not, the text would end at the last piece that fitted.
        let _ = write(&mut s);
        s
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for Inline {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Translated words for the built-in templates and fact names.
#[derive(Serialize)]
struct Words {
    job: &'static str,
    status: &'static str,
    cluster: &'static str,
    job_id: &'static str,
    started: &'static str,
    ended: &'static str,
    duration: &'static str,
    error: &'static str,
    time: &'static str,
}

const EN: Words = Words {
    job: "Job",
    status: "Status",
    cluster: "Cluster",
    job_id: "Job ID",
    started: "Started",
    ended: "Ended",
    duration: "Duration",
    error: "Error",
    time: "Time",
};

const ZH: Words = Words {
    job: "作业",
    status: "状态",
    cluster: "集群",
    job_id: "作业 ID",
    started: "开始时间",
    ended: "结束时间",
    duration: "运行时长",
    error: "异常",
    time: "告警时间",
};

fn severity_label(s: Severity, lang: Lang) -> &'static str {
    match (s, lang) {
        (Severity::Info, Lang::En) => "Info",
        (Severity::Warning, Lang::En) => "Warning",
        (Severity::Error, Lang::En) => "Error",
        (Severity::Critical, Lang::En) => "Critical",
        (Severity::Info, Lang::Zh) => "通知",
        (Severity::Warning, Lang::Zh) => "警告",
        (Severity::Error, Lang::Zh) => "错误",
        (Severity::Critical, Lang::Zh) => "严重",
    }
}

#[derive(Serialize)]
struct JobCtx<'a> {
    name: &'a str,
    id: Option<&'a str>,
    status: Option<&'static str>,
    cluster: Option<&'a str>,
    url: Option<&'a str>,
    started_at: Option<&'a str>,
    ended_at: Option<&'a str>,
    duration: Option<&'a str>,
    duration_secs: Option<i64>,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct LinkCtx<'a> {
    title: &'a str,
    url: &'a str,
}

/// The documented template context, every key always present (strict mode).
#[derive(Serialize)]
struct Context<'a> {
    title: &'a str,
    body: &'a str,
    severity: &'static str,
    state: &'static str,
    /// `resolved`, the labels, icon and colours.
    #[serde(flatten)]
    words_and_colours: Labels,
    job: Option<JobCtx<'a>>,
    facts: Vec<(&'a str, &'a str)>,
    /// Rendered here rather than by a template loop: several times faster.
    facts_markdown: String,
    links_markdown: String,
    facts_text: String,
    links_text: String,
    fields: &'a [(String, String)],
    labels: &'a BTreeMap<String, String>,
    links: Vec<LinkCtx<'a>>,
    occurred_at: Option<&'a str>,
    platform: &'a str,
    lang: Lang,
    /// The translated words, converted to a template value once per language.
    #[serde(rename = "t")]
    words: minijinja::Value,
}

/// `YYYY-MM-DD HH:MM:SS UTC`, written digit by digit: chrono's `format`
/// parses its pattern on every call and `format!` is several times slower.
fn fmt_time(t: DateTime<Utc>) -> Inline {
    use chrono::{Datelike, Timelike};
    // The naive date and time: `DateTime`'s own accessors add the (zero)
    // offset again on every call.
    let t = t.naive_utc();
    Inline::new(|out| {
        let Ok(year @ 0..=9999) = u32::try_from(t.year()) else {
            return write!(out, "{}", t.format("%Y-%m-%d %H:%M:%S UTC"));
        };
        let mut buf = *b"0000-00-00 00:00:00 UTC";
        let mut put = |at: usize, mut n: u32, width: usize| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
            }
        };
        put(0, year, 4);
        put(5, t.month(), 2);
        put(8, t.day(), 2);
        put(11, t.hour(), 2);
        put(14, t.minute(), 2);
        put(17, t.second(), 2);
        // Digits and ASCII punctuation only.
        out.write_str(std::str::from_utf8(&buf).unwrap_or_default())
    })
}

fn words_value(lang: Lang) -> minijinja::Value {
    static VALUES: OnceLock<[minijinja::Value; 2]> = OnceLock::new();
    let [en, zh] = VALUES.get_or_init(|| {
        [
            minijinja::Value::from(minijinja::value::Serde(&EN)),
            minijinja::Value::from(minijinja::value::Serde(&ZH)),
        ]
    });
    match lang {
        Lang::En => en.clone(),
        Lang::Zh => zh.clone(),
    }
}

/// What `write` writes, as a string.
fn joined<T>(items: &[T], write: fn(&mut String, &[T])) -> String {
    let mut out = String::with_capacity(items.len() * 48);
    write(&mut out, items);
    out
}

/// `facts` as Markdown lines, `- **name**: value`, escaped.
fn write_facts_markdown(out: &mut String, facts: &[(&str, &str)]) {
    for (name, value) in facts {
        out.push_str("- **");
        push_md_escaped(out, name);
        out.push_str("**: ");
        push_md_escaped(out, value);
        out.push('\n');
    }
}

/// `facts` as `name: value` lines.
fn write_facts_text(out: &mut String, facts: &[(&str, &str)]) {
    for (name, value) in facts {
        out.extend([*name, ": ", *value, "\n"]);
    }
}

/// `links` as `[title](url)` joined by ` | `; the URL's delimiters
/// percent-encoded; a URL that is not `http(s)` as escaped text.
fn write_links_markdown(out: &mut String, links: &[(&str, &str)]) {
    for (i, (title, url)) in links.iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        if is_web_url(url) {
            out.push('[');
            push_md_escaped(out, title);
            out.push_str("](");
            push_link_url(out, url);
            out.push(')');
        } else {
            push_md_escaped(out, title);
            out.push_str(": ");
            push_md_escaped(out, url);
        }
    }
}

/// `links` as `title: url` lines.
fn write_links_text(out: &mut String, links: &[(&str, &str)]) {
    for (i, (title, url)) in links.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.extend([*title, ": ", *url]);
    }
}

/// The alert's state and severity in words, icon and colours.
#[derive(Serialize)]
struct Labels {
    resolved: bool,
    severity_label: &'static str,
    state_label: &'static str,
    severity_color: &'static str,
    severity_icon: &'static str,
    wecom_color: &'static str,
    html_color: &'static str,
}

impl Labels {
    fn new(alert: &Alert, lang: Lang) -> Self {
        let resolved = alert.state == AlertState::Resolved;
        let (severity_color, severity_icon, wecom_color, html_color) =
            match (resolved, alert.severity) {
                (true, _) => ("green", "✅", "info", "#2e7d32"),
                (false, Severity::Info) => ("blue", "ℹ️", "comment", "#1565c0"),
                (false, Severity::Warning) => ("orange", "⚠️", "warning", "#ef6c00"),
                (false, Severity::Error) => ("red", "❌", "warning", "#c62828"),
                (false, Severity::Critical) => ("red", "🔥", "warning", "#b71c1c"),
            };
        Labels {
            resolved,
            severity_label: severity_label(alert.severity, lang),
            state_label: match (resolved, lang) {
                (true, Lang::En) => "Resolved",
                (true, Lang::Zh) => "已恢复",
                (false, Lang::En) => "Firing",
                (false, Lang::Zh) => "告警中",
            },
            severity_color,
            severity_icon,
            wecom_color,
            html_color,
        }
    }
}

/// The alert's times, formatted once per render (inline, no allocation)
/// and borrowed by the context's job, facts and `occurred_at`.
struct Times {
    started: Option<Inline>,
    ended: Option<Inline>,
    duration_secs: Option<i64>,
    duration: Option<Inline>,
    occurred: Option<Inline>,
}

impl Times {
    fn new(alert: &Alert, now: DateTime<Utc>) -> Self {
        let job = alert.job.as_ref();
        let duration_secs = job.and_then(|j| j.duration(now)).map(|d| d.num_seconds());
        Times {
            started: job.and_then(|j| j.started_at).map(fmt_time),
            ended: job.and_then(|j| j.ended_at).map(fmt_time),
            duration_secs,
            duration: duration_secs.map(|secs| Inline::new(|out| write_duration(out, secs))),
            occurred: alert.occurred_at.map(fmt_time),
        }
    }

    fn started(&self) -> Option<&str> {
        self.started.as_ref().map(Inline::as_str)
    }

    fn ended(&self) -> Option<&str> {
        self.ended.as_ref().map(Inline::as_str)
    }

    fn duration(&self) -> Option<&str> {
        self.duration.as_ref().map(Inline::as_str)
    }

    fn occurred(&self) -> Option<&str> {
        self.occurred.as_ref().map(Inline::as_str)
    }
}

/// The template context of `alert` as a template value, converted once for
/// several renders. Inside [`share_context`] the dispatched alert's context
/// is built once, by the first channel that renders it, and the others only
/// lay their `platform` over it.
fn context_value(alert: &Alert, platform: &str, lang: Lang) -> minijinja::Value {
    let build = || {
        let times = Times::new(alert, Utc::now());
        minijinja::Value::from(minijinja::value::Serde(&Context::new(
            alert, &times, platform, lang,
        )))
    };
    let shared = SHARED_CONTEXT.try_with(|shared| {
        if shared.alert != std::ptr::from_ref(alert) as usize {
            return None;
        }
        let slot = match lang {
            Lang::En => 0,
            Lang::Zh => 1,
        };
        let mut built = shared.built.lock().unwrap_or_else(|e| e.into_inner());
        Some(match &built[slot] {
            Some((base, base_platform)) if base_platform == platform => base.clone(),
            Some((base, _)) => minijinja::context! { platform => platform, ..base.clone() },
            None => {
                let base = build();
                built[slot] = Some((base.clone(), platform.to_owned()));
                base
            }
        })
    });
    shared.ok().flatten().unwrap_or_else(build)
}

tokio::task_local! {
    static SHARED_CONTEXT: SharedContext;
}

/// The dispatched alert (by address: it is borrowed for the whole scope, so
/// no other alert can have that address meanwhile) and its contexts per
/// language, with the platform each was built for.
struct SharedContext {
    alert: usize,
    built: std::sync::Mutex<[Option<(minijinja::Value, String)>; 2]>,
}

impl SharedContext {
    fn new(alert: &Alert) -> Self {
        SharedContext {
            alert: std::ptr::from_ref(alert) as usize,
            built: std::sync::Mutex::new([None, None]),
        }
    }
}

/// Runs `fut` (the sends of one dispatch of `alert`) with `alert`'s template
/// context shared between the channels that render it.
pub(crate) async fn share_context<F: std::future::Future>(alert: &Alert, fut: F) -> F::Output {
    SHARED_CONTEXT.scope(SharedContext::new(alert), fut).await
}

/// [`share_context`] for synchronous work (previews).
pub(crate) fn share_context_sync<R>(alert: &Alert, f: impl FnOnce() -> R) -> R {
    SHARED_CONTEXT.sync_scope(SharedContext::new(alert), f)
}

fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
    }
}

impl<'a> Context<'a> {
    fn new(alert: &'a Alert, times: &'a Times, platform: &'a str, lang: Lang) -> Self {
        let t = words(lang);
        let job = alert.job.as_ref().map(|j| JobCtx {
            name: &j.name,
            id: j.id.as_deref(),
            status: j.status.map(|s| s.as_str()),
            cluster: j.cluster.as_deref(),
            url: j.url.as_deref(),
            started_at: times.started(),
            ended_at: times.ended(),
            duration: times.duration(),
            duration_secs: times.duration_secs,
            error: j.error.as_deref(),
        });
        let links = alert.links_with_job(t.job);
        let facts = facts(alert, t, times);
        let facts_markdown = joined(&facts, write_facts_markdown);
        let facts_text = joined(&facts, write_facts_text);
        let links_markdown = joined(&links, write_links_markdown);
        let links_text = joined(&links, write_links_text);
        Context {
            title: &alert.title,
            body: &alert.body,
            severity: alert.severity.as_str(),
            state: alert.state.as_str(),
            words_and_colours: Labels::new(alert, lang),
            facts,
            facts_markdown,
            links_markdown,
            facts_text,
            links_text,
            job,
            fields: &alert.fields,
            labels: &alert.labels,
            links: links
                .into_iter()
                .map(|(title, url)| LinkCtx { title, url })
                .collect(),
            occurred_at: times.occurred(),
            platform,
            lang,
            words: words_value(lang),
        }
    }
}

fn facts<'a>(alert: &'a Alert, t: &'static Words, times: &'a Times) -> Vec<(&'a str, &'a str)> {
    let mut rows = Vec::with_capacity(8 + alert.fields.len());
    if let Some(j) = &alert.job {
        rows.push((t.job, j.name.as_str()));
        if let Some(s) = j.status {
            rows.push((t.status, s.as_str()));
        }
        if let Some(c) = &j.cluster {
            rows.push((t.cluster, c.as_str()));
        }
        if let Some(id) = &j.id {
            rows.push((t.job_id, id.as_str()));
        }
        if let Some(s) = times.started() {
            rows.push((t.started, s));
        }
        if let Some(e) = times.ended() {
            rows.push((t.ended, e));
        }
        if let Some(d) = times.duration() {
            rows.push((t.duration, d));
        }
    }
    if let Some(at) = times.occurred() {
        rows.push((t.time, at));
    }
    rows.extend(alert.fields.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    rows
}

/// The rows a table or card shows for `alert`: job facts, time, then its
/// fields, named in `lang`. Channels building structured payloads (cards,
/// spreadsheets) use this so every platform shows the same facts.
///
/// ```
/// use alertkit::{Alert, JobInfo, JobStatus};
/// use alertkit::template::{Lang, fact_rows};
/// let alert = Alert::new("orders-etl FAILED")
///     .job(JobInfo::new("orders-etl").status(JobStatus::Failed))
///     .field("Owner", "data-team");
/// let rows = fact_rows(&alert, Lang::En);
/// assert_eq!(rows.first().unwrap(), &("Job".to_owned(), "orders-etl".to_owned()));
/// assert_eq!(rows.last().unwrap(), &("Owner".to_owned(), "data-team".to_owned()));
/// assert_eq!(fact_rows(&alert, Lang::Zh)[0].0, "作业");
/// ```
pub fn fact_rows(alert: &Alert, lang: Lang) -> Vec<(String, String)> {
    let times = FactTimes::new(alert);
    times
        .rows(alert, lang)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// An alert's formatted times, which [`fact_rows`] borrowed from
/// [`FactTimes::rows`] point into.
pub(crate) struct FactTimes(Times);

impl FactTimes {
    pub(crate) fn new(alert: &Alert) -> Self {
        FactTimes(Times::new(alert, Utc::now()))
    }

    /// [`fact_rows`], borrowed.
    pub(crate) fn rows<'a>(&'a self, alert: &'a Alert, lang: Lang) -> Vec<(&'a str, &'a str)> {
        facts(alert, words(lang), &self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{JobInfo, JobStatus, Mention};

    fn flink_alert() -> Alert {
        let start = "2026-11-20T10:00:00Z".parse().unwrap();
        let end = "2026-11-20T10:05:00Z".parse().unwrap();
        Alert::new("Flink job orders-etl FAILED")
            .body("Checkpoint 42 failed 3 times in a row.")
            .severity(Severity::Critical)
            .job(
                JobInfo::new("orders-etl")
                    .id("a1b2c3")
                    .status(JobStatus::Failed)
                    .cluster("prod-yarn")
                    .url("https://flink.example/#/job/a1b2c3")
                    .times(start, Some(end))
                    .error("java.lang.RuntimeException: boom\n\tat Foo.bar(Foo.java:1)"),
            )
            .field("Owner", "data-team")
            .link("Runbook", "https://wiki.example/runbook")
            .mention(Mention::All)
    }

    #[test]
    fn default_markdown_shows_the_job() {
        let md = Templates::default()
            .render(Format::Markdown, &flink_alert(), "dingtalk")
            .unwrap();
        assert_eq!(
            md,
            "### 🔥 Flink job orders-etl FAILED\n\nCheckpoint 42 failed 3 times in a row.\n\n\
             - **Job**: orders-etl\n- **Status**: FAILED\n- **Cluster**: prod-yarn\n- **Job ID**: a1b2c3\n\
             - **Started**: 2026-11-20 10:00:00 UTC\n- **Ended**: 2026-11-20 10:05:00 UTC\n\
             - **Duration**: 5m\n- **Owner**: data-team\n\n\
             **Error**: java.lang.RuntimeException: boom\n\n\
             [Job](https://flink.example/#/job/a1b2c3) | [Runbook](https://wiki.example/runbook)"
        );
    }

    #[test]
    fn wecom_markdown_uses_font_colors_and_chinese_labels() {
        let t = Templates::with_overrides(&TemplateOverrides {
            lang: Some(Lang::Zh),
            ..Default::default()
        })
        .unwrap();
        let md = t.render(Format::Markdown, &flink_alert(), "wecom").unwrap();
        assert!(
            md.starts_with("### <font color=\"warning\">严重</font> Flink job orders-etl FAILED"),
            "{md}"
        );
        assert!(md.contains("- **集群**: prod-yarn"), "{md}");
        let resolved = t
            .render(Format::Markdown, &flink_alert().resolved(), "wecom")
            .unwrap();
        assert!(
            resolved.starts_with("### <font color=\"info\">已恢复</font>"),
            "{resolved}"
        );
    }

    #[test]
    fn text_title_and_html() {
        let t = Templates::default();
        let a = flink_alert();
        assert_eq!(
            t.render(Format::Title, &a, "x").unwrap(),
            "[Critical] Flink job orders-etl FAILED"
        );
        assert_eq!(
            t.render(Format::Title, &a.clone().resolved(), "x").unwrap(),
            "[Resolved] Flink job orders-etl FAILED"
        );
        let text = t.render(Format::Text, &a, "x").unwrap();
        assert!(
            text.starts_with("[Critical] Flink job orders-etl FAILED\n\nCheckpoint 42"),
            "{text}"
        );
        assert!(text.contains("\nCluster: prod-yarn\n"), "{text}");
        assert!(
            text.contains("\nRunbook: https://wiki.example/runbook"),
            "{text}"
        );
        assert!(text.contains("\tat Foo.bar"), "full error in text: {text}");

        let mut evil = a.clone();
        evil.title = "<script>alert(1)</script>".into();
        evil.fields.push(("x".into(), "a & b <c>".into()));
        let html = t.render(Format::Html, &evil, "email").unwrap();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("<tr><th align=\"left\">x</th><td>a &amp; b &lt;c&gt;</td></tr>"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
    }

    #[test]
    fn minimal_alert_renders_in_every_format() {
        let t = Templates::default();
        let map = t.preview(&Alert::new("disk full"), "dingtalk").unwrap();
        assert_eq!(map["title"], "[Error] disk full");
        assert_eq!(map["text"], "[Error] disk full");
        assert_eq!(map["markdown"], "### ❌ disk full");
        assert!(map["html"].contains("disk full"));
    }

    #[test]
    fn markdown_escape_keeps_user_text_inert() {
        let a = Alert::new("a*b_[c](d)").field("k|", "`x`");
        let md = Templates::default()
            .render(Format::Markdown, &a, "dingtalk")
            .unwrap();
        assert!(md.contains("a\\*b\\_\\[c\\]\u{200B}(d)"), "{md}");
        assert!(md.contains(r"- **k\|**: \`x\`"), "{md}");
    }

    #[test]
    fn syntax_errors_name_template_and_line() {
        let err = Templates::with_overrides(&TemplateOverrides {
            markdown: Some("line one\n{{ title }\n".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Template);
        assert_eq!(err.field(), Some("templates.markdown"));
        assert!(err.message().contains("line 2"), "{err}");
    }

    #[test]
    fn undefined_variables_are_errors() {
        let t = Templates::with_overrides(&TemplateOverrides {
            text: Some("{{ titel }}".into()),
            ..Default::default()
        })
        .unwrap();
        let err = t.render(Format::Text, &Alert::new("x"), "x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Template);
        assert!(err.message().contains("undefined"), "{err}");
        // Absent optional values are defined (as none), so templates can test them.
        let t = Templates::with_overrides(&TemplateOverrides {
            text: Some(
                "{% if job %}{{ job.name }}{% else %}no job{% endif %}|{{ occurred_at or 'now' }}"
                    .into(),
            ),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            t.render(Format::Text, &Alert::new("x"), "x").unwrap(),
            "no job|now"
        );
    }

    #[test]
    fn fuel_limit_stops_runaway_templates() {
        let t = Templates::with_overrides(&TemplateOverrides {
            text: Some(
                "{% for i in range(10000) %}{% for j in range(10000) %}.{% endfor %}{% endfor %}"
                    .into(),
            ),
            ..Default::default()
        })
        .unwrap();
        let err = t.render(Format::Text, &Alert::new("x"), "x").unwrap_err();
        assert!(err.message().contains("fuel"), "{err}");
    }

    #[tokio::test]
    async fn shared_context_renders_like_a_fresh_one() {
        let alert = flink_alert();
        let other = Alert::new("another alert");
        let zh = Templates::with_overrides(&TemplateOverrides::default().lang(Lang::Zh)).unwrap();
        let render_all = || {
            let mut out = Vec::new();
            for t in [&Templates::default(), &zh] {
                for platform in ["dingtalk", "wecom", "feishu_card", "dingtalk"] {
                    for f in [Format::Title, Format::Markdown, Format::Text, Format::Html] {
                        out.push(t.render(f, &alert, platform).unwrap());
                    }
                }
                // Another alert rendered inside the scope gets its own context.
                out.push(t.render(Format::Title, &other, "wecom").unwrap());
            }
            out
        };
        let fresh = render_all();
        let shared = share_context(&alert, async { render_all() }).await;
        assert_eq!(fresh, shared);
        assert!(
            shared.iter().any(|s| s.contains("<font color")),
            "wecom platform seen"
        );
        assert!(shared.last().unwrap().contains("another alert"));
    }

    #[test]
    fn helpers() {
        let t = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            fmt_time(t("2026-01-02T03:04:05Z")).as_str(),
            "2026-01-02 03:04:05 UTC"
        );
        assert_eq!(
            fmt_time(t("0987-12-31T23:59:59Z")).as_str(),
            "0987-12-31 23:59:59 UTC"
        );
        assert_eq!(
            fmt_time(t("+12345-01-01T00:00:00Z")).as_str(),
            "+12345-01-01 00:00:00 UTC"
        );
        assert_eq!(md_escape("a_b*[x]|~"), "a\\_b\\*\\[x\\]\\|\\~");
        assert_eq!(md_escape("作业 <失败>"), "作业 \\<\u{200B}失败\\>");
        assert_eq!(md_escape("[x](y)"), "\\[x\\]\u{200B}(y)");
        assert_eq!(md_escape("plain 文本"), "plain 文本");
        assert_eq!(human_duration(0), "0s");
        assert_eq!(human_duration(59), "59s");
        assert_eq!(human_duration(300), "5m");
        assert_eq!(human_duration(3723), "1h 2m 3s");
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(90061), "1d 1h 1m 1s");
        assert_eq!(human_duration(86_460), "1d 0h 1m");
        assert_eq!(human_duration(3601), "1h 0m 1s");
        assert_eq!(human_duration(-5), "0s");
        assert_eq!(human_duration(i64::MAX), "106751991167300d 15h 30m 7s");
        // The extremes still fit the inline buffer.
        let max = Inline::new(|out| write_duration(out, i64::MAX));
        assert_eq!(max.as_str(), human_duration(i64::MAX));
        assert_eq!(
            fmt_time(DateTime::<Utc>::MAX_UTC).as_str(),
            "+262142-12-31 23:59:59 UTC"
        );
        assert_eq!(
            fmt_time(DateTime::<Utc>::MIN_UTC).as_str(),
            "-262143-01-01 00:00:00 UTC"
        );
        assert_eq!(tidy("a  \n\n\n\nb\n\n".into(), false), "a\n\nb");
        assert_eq!(tidy(" a\n b ".into(), true), "a b");
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(1024))]

        /// The no-copy check never lets through what `tidy` would change,
        /// and everything `tidy` returns passes it.
        #[test]
        fn is_tidy_agrees_with_tidy(
            s in proptest::collection::vec(
                // Words as likely as all the kinds of space together.
                proptest::sample::select(&[
                    "a", "bc", "a", "bc", "a", "bc", "a", "bc", " ", "  ", "\t", "\r",
                    "\n", "\n\n", "\n\n\n", "\u{3000}", "\u{a0}",
                ][..]),
                0..12,
            ).prop_map(|parts| parts.concat()),
            one_line in proptest::bool::ANY,
        ) {
            if is_tidy(&s, one_line) {
                proptest::prop_assert_eq!(tidy_copy(&s, one_line), s.clone());
            }
            let t = tidy(s, one_line);
            proptest::prop_assert!(is_tidy(&t, one_line), "{:?}", t);
        }
    }
}
