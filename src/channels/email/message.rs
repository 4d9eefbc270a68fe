//! The MIME message: plain text always, HTML (template or table), an .xlsx
//! of the facts built in memory, and headers no alert text can inject into.

use lettre::Message;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::alert::Alert;
use crate::error::{Error, ErrorKind, Result};
use crate::template::{Lang, fact_rows};

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// What goes into one message.
pub(crate) struct Parts {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub xlsx: Option<(String, Vec<u8>)>,
}

/// A header value on one line: CR and LF (and other controls) become spaces,
/// so a title like `"x\r\nBcc: evil@x"` stays inside its header.
pub(crate) fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Every row a table or spreadsheet shows: the alert's own facts first.
pub(crate) fn rows(alert: &Alert, lang: Lang) -> Vec<(String, String)> {
    let zh = lang == Lang::Zh;
    let mut rows = vec![
        (
            (if zh { "标题" } else { "Title" }).to_owned(),
            alert.title.clone(),
        ),
        (
            (if zh { "级别" } else { "Severity" }).to_owned(),
            alert.severity.as_str().to_owned(),
        ),
        (
            // Not "状态": the job's status row below is called that.
            (if zh { "告警状态" } else { "Alert state" }).to_owned(),
            alert.state.as_str().to_owned(),
        ),
    ];
    rows.extend(fact_rows(alert, lang));
    if let Some(url) = alert.job.as_ref().and_then(|j| j.url.as_ref()) {
        rows.push((
            (if zh { "作业链接" } else { "Job URL" }).to_owned(),
            url.clone(),
        ));
    }
    for (k, v) in &alert.labels {
        let name = if zh {
            format!("标签 {k}")
        } else {
            format!("Label {k}")
        };
        rows.push((name, v.clone()));
    }
    if !alert.body.is_empty() {
        rows.push((
            (if zh { "内容" } else { "Message" }).to_owned(),
            alert.body.clone(),
        ));
    }
    if let Some(e) = alert.job.as_ref().and_then(|j| j.error.as_ref()) {
        rows.push(((if zh { "异常" } else { "Error" }).to_owned(), e.clone()));
    }
    for l in &alert.links {
        rows.push((l.title.clone(), l.url.clone()));
    }
    rows
}

/// The rows as an HTML table, every value escaped.
pub(crate) fn html_table(title: &str, rows: &[(String, String)]) -> String {
    let mut s = format!(
        "<div style=\"font-family:-apple-system,'PingFang SC','Microsoft YaHei',Arial,sans-serif;font-size:14px\">\n<h3>{}</h3>\n<table style=\"border-collapse:collapse\" cellpadding=\"6\" border=\"1\">\n",
        html_escape(title)
    );
    for (k, v) in rows {
        s.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td style=\"white-space:pre-wrap\">{}</td></tr>\n",
            html_escape(k),
            html_escape(v)
        ));
    }
    s.push_str("</table>\n</div>");
    s
}

/// The rows as an .xlsx workbook, built in memory.
pub(crate) fn xlsx(rows: &[(String, String)], lang: Lang) -> Result<Vec<u8>> {
    let err = |e: rust_xlsxwriter::XlsxError| {
        Error::new(ErrorKind::Internal, "cannot build the spreadsheet").with_source(e)
    };
    let mut wb = rust_xlsxwriter::Workbook::new();
    let bold = rust_xlsxwriter::Format::new().set_bold();
    let ws = wb.add_worksheet();
    ws.set_name("Alert").map_err(err)?;
    let (field, value) = if lang == Lang::Zh {
        ("字段", "值")
    } else {
        ("Field", "Value")
    };
    ws.write_string_with_format(0, 0, field, &bold)
        .map_err(err)?;
    ws.write_string_with_format(0, 1, value, &bold)
        .map_err(err)?;
    for (i, (k, v)) in rows.iter().enumerate() {
        let r = u32::try_from(i + 1).unwrap_or(u32::MAX);
        ws.write_string(r, 0, k).map_err(err)?;
        // Excel caps a cell at 32,767 characters.
        ws.write_string(r, 1, crate::text::limit_chars(v, 32_000))
            .map_err(err)?;
    }
    ws.set_column_width(0, 18).map_err(err)?;
    ws.set_column_width(1, 80).map_err(err)?;
    wb.save_to_buffer().map_err(err)
}

/// A file name from the alert title: no path or reserved characters.
pub(crate) fn file_name(title: &str) -> String {
    let clean: String = title
        .chars()
        .filter(|c| {
            !c.is_control() && !matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        })
        .collect();
    let clean = crate::text::limit_chars(clean.trim(), 80).replace('…', "");
    if clean.trim().is_empty() {
        "alert.xlsx".to_owned()
    } else {
        format!("{}.xlsx", clean.trim())
    }
}

/// The envelope lettre wants to build a message; the real one (with Bcc)
/// is the caller's, and headers never carry Bcc.
fn envelope(from: &Mailbox) -> Result<lettre::address::Envelope> {
    lettre::address::Envelope::new(Some(from.email.clone()), vec![from.email.clone()])
        .map_err(|e| Error::new(ErrorKind::Internal, "cannot build the envelope").with_source(e))
}

/// An RFC 2231 extended value: UTF-8 bytes, `attr-char`s kept, the rest
/// percent-encoded.
fn rfc2231(name: &str) -> String {
    let mut out = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name with its non-ASCII characters left out, for readers without
/// RFC 2231 (`alert.xlsx` when nothing is left).
fn ascii_name(name: &str) -> String {
    let kept: String = name
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
        .collect();
    let kept = kept.trim();
    if kept.is_empty() || kept == ".xlsx" {
        "alert.xlsx".to_owned()
    } else {
        kept.to_owned()
    }
}

/// The formatted message (ASCII: every non-ASCII part is encoded) and its
/// Message-ID: `<key@sender's domain>` for a delivery's idempotency `key`,
/// the same on every retry and redelivery (so readers and archives can drop
/// a copy), else a random one.
pub(crate) fn build(
    from: &Mailbox,
    to: &[Mailbox],
    cc: &[Mailbox],
    parts: Parts,
    key: Option<&str>,
) -> Result<(String, Option<String>)> {
    let message_id = key.map(|k| {
        let domain = from.email.domain();
        let domain = if domain.is_ascii() && !domain.is_empty() {
            domain
        } else {
            "alertkit.invalid"
        };
        format!("<{k}@{domain}>")
    });
    let mut b = Message::builder()
        .message_id(message_id)
        .from(from.clone())
        .subject(one_line(&parts.subject));
    for m in to {
        b = b.to(m.clone());
    }
    for m in cc {
        b = b.cc(m.clone());
    }
    let plain = SinglePart::plain(parts.text);
    let attachment = match parts.xlsx {
        Some((name, bytes)) => {
            // RFC 2231 in Content-Disposition (lettre) and in the
            // Content-Type name too (`name*=UTF-8''…`, with an ASCII
            // `name` for old readers); never an encoded-word inside a
            // quoted string, which RFC 2047 forbids.
            let ct = ContentType::parse(&format!(
                "{XLSX}; name=\"{}\"; name*=UTF-8''{}",
                ascii_name(&name),
                rfc2231(&name)
            ))
            .or_else(|_| ContentType::parse(XLSX))
            .map_err(|e| Error::new(ErrorKind::Internal, format!("bad content type: {e}")))?;
            Some(Attachment::new(name).body(bytes, ct))
        }
        None => None,
    };
    let message = match (parts.html, attachment) {
        // `text` format: one text/plain part, as documented.
        (None, None) => b.envelope(envelope(from)?).singlepart(plain),
        (None, Some(att)) => b
            .envelope(envelope(from)?)
            .multipart(MultiPart::mixed().singlepart(plain).singlepart(att)),
        (Some(html), att) => {
            let main = MultiPart::alternative()
                .singlepart(plain)
                .singlepart(SinglePart::html(html));
            let body = match att {
                Some(att) => MultiPart::mixed().multipart(main).singlepart(att),
                None => main,
            };
            b.envelope(envelope(from)?).multipart(body)
        }
    }
    .map_err(|e| {
        Error::new(
            ErrorKind::InvalidContent,
            format!("cannot build the message: {e}"),
        )
        .with_retryable(false)
    })?;
    let formatted = String::from_utf8(message.formatted())
        .map_err(|e| Error::new(ErrorKind::Internal, "the message is not UTF-8").with_source(e))?;
    let id = formatted
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .map(|s| s.trim().to_owned());
    Ok((formatted, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_stay_on_one_line() {
        assert_eq!(one_line("x\r\nBcc: evil@x"), "x  Bcc: evil@x");
        assert_eq!(file_name("告警: a/b*c?"), "告警 abc.xlsx");
        assert_eq!(file_name("\r\n"), "alert.xlsx");
        assert!(html_table("<t>", &[("a&b".into(), "<script>".into())]).contains("<th align=\"left\">a&amp;b</th><td style=\"white-space:pre-wrap\">&lt;script&gt;</td>"));
    }
}
