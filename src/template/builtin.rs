//! The built-in templates, written in Rust.
//!
//! Most instances never override a template, and a minijinja render costs
//! far more than the text it makes: converting the context to template
//! values, then a VM step per node. These functions write what the sources
//! in `template.rs` (`DEFAULT_TITLE` and the others) write, byte for byte
//! after `tidy`; a property test renders random alerts both ways on every
//! platform, format and language. The minijinja sources stay the documented
//! definition (and what an override starts from); a change to one must be
//! made to both.

use std::fmt::Write as _;

use chrono::Utc;

use super::{
    Format, Labels, Lang, Times, Words, facts, first_line, is_web_url, limit, push_md_escaped,
    push_neutralized, words, write_facts_markdown, write_facts_text, write_links_markdown,
    write_links_text,
};
use crate::alert::Alert;

/// What the built-in templates show of one alert, computed once for the
/// formats rendered together.
pub(super) struct View<'a> {
    alert: &'a Alert,
    t: &'static Words,
    labels: Labels,
    times: Times,
    links: Vec<(&'a str, &'a str)>,
}

impl<'a> View<'a> {
    pub(super) fn new(alert: &'a Alert, lang: Lang) -> Self {
        let t = words(lang);
        View {
            alert,
            t,
            labels: Labels::new(alert, lang),
            times: Times::new(alert, Utc::now()),
            links: alert.links_with_job(t.job),
        }
    }

    /// `job.error` when set and not empty (`job and job.error`).
    fn error(&self) -> Option<&'a str> {
        self.alert
            .job
            .as_ref()
            .and_then(|j| j.error.as_deref())
            .filter(|e| !e.is_empty())
    }

    /// `state_label if resolved else severity_label`.
    fn label(&self) -> &'static str {
        if self.labels.resolved {
            self.labels.state_label
        } else {
            self.labels.severity_label
        }
    }

    /// The template's output before `tidy`, less the trailing whitespace
    /// `tidy` would cut (so that mostly there is nothing left for it to do).
    pub(super) fn render(&self, format: Format, platform: &str) -> String {
        let mut out = String::with_capacity(512);
        match format {
            Format::Title => self.title(&mut out),
            Format::Text => self.text(&mut out),
            Format::Markdown if platform == "feishu_card" => self.feishu_card(&mut out),
            Format::Markdown => self.markdown(&mut out, platform),
            Format::Html => self.html(&mut out),
        }
        out.truncate(out.trim_end().len());
        out
    }

    fn title(&self, out: &mut String) {
        out.extend(["[", self.label(), "] ", &self.alert.title]);
    }

    fn text(&self, out: &mut String) {
        let a = self.alert;
        out.extend(["[", self.label(), "] ", &a.title, "\n"]);
        if !a.body.is_empty() {
            out.extend(["\n", &a.body, "\n"]);
        }
        out.push('\n');
        write_facts_text(out, &facts(a, self.t, &self.times));
        if let Some(e) = self.error() {
            out.extend(["\n", self.t.error, ": ", &limit(e, 1000), "\n"]);
        }
        if !self.links.is_empty() {
            out.push('\n');
            write_links_text(out, &self.links);
        }
    }

    fn feishu_card(&self, out: &mut String) {
        // The template starts with a line break, which `tidy` trims.
        push_neutralized(out, &self.alert.body);
        if let Some(e) = self.error() {
            out.extend(["\n\n**", self.t.error, "**: "]);
            push_md_escaped(out, &limit(first_line(e), 300));
        }
    }

    fn markdown(&self, out: &mut String, platform: &str) {
        let a = self.alert;
        if platform == "wecom" {
            out.extend([
                "### <font color=\"",
                self.labels.wecom_color,
                "\">",
                self.label(),
                "</font> ",
            ]);
        } else {
            let icon = if self.labels.resolved {
                "✅"
            } else {
                self.labels.severity_icon
            };
            out.extend(["### ", icon, " "]);
        }
        push_md_escaped(out, &a.title);
        out.push('\n');
        if !a.body.is_empty() {
            out.push('\n');
            push_neutralized(out, &a.body);
            out.push('\n');
        }
        out.push('\n');
        write_facts_markdown(out, &facts(a, self.t, &self.times));
        if let Some(e) = self.error() {
            out.extend(["\n**", self.t.error, "**: "]);
            push_md_escaped(out, &limit(first_line(e), 300));
            out.push('\n');
        }
        if !self.links.is_empty() {
            out.push('\n');
            write_links_markdown(out, &self.links);
            out.push('\n');
        }
    }

    fn html(&self, out: &mut String) {
        // What minijinja's HTML auto-escaping writes for a string.
        fn esc(out: &mut String, s: &str) {
            let _ = write!(out, "{}", minijinja::HtmlEscape(s));
        }
        let a = self.alert;
        out.push_str(
            "<div style=\"font-family:-apple-system,'PingFang SC','Microsoft YaHei',Arial,sans-serif;font-size:14px\">\n\
             <h3 style=\"margin:0 0 8px;color:",
        );
        esc(out, self.labels.html_color);
        out.push_str("\">[");
        esc(out, self.label());
        out.push_str("] ");
        esc(out, &a.title);
        out.push_str("</h3>\n");
        if !a.body.is_empty() {
            out.push_str("<p style=\"white-space:pre-wrap\">");
            esc(out, &a.body);
            out.push_str("</p>\n");
        }
        let facts = facts(a, self.t, &self.times);
        if !facts.is_empty() {
            out.push_str(
                "<table style=\"border-collapse:collapse\" cellpadding=\"6\" border=\"1\">\n",
            );
            for (name, value) in &facts {
                out.push_str("<tr><th align=\"left\">");
                esc(out, name);
                out.push_str("</th><td>");
                esc(out, value);
                out.push_str("</td></tr>\n");
            }
            out.push_str("</table>\n");
        }
        if let Some(e) = self.error() {
            out.push_str("<p><b>");
            esc(out, self.t.error);
            out.push_str("</b></p><pre style=\"white-space:pre-wrap\">");
            esc(out, &limit(e, 4000));
            out.push_str("</pre>\n");
        }
        for (i, (title, url)) in self.links.iter().enumerate() {
            if i > 0 {
                out.push_str(" | ");
            }
            if is_web_url(url) {
                out.push_str("<a href=\"");
                esc(out, url);
                out.push_str("\">");
                esc(out, title);
                out.push_str("</a>");
            } else {
                esc(out, title);
                out.push_str(": ");
                esc(out, url);
            }
        }
        out.push_str("\n</div>");
    }
}
