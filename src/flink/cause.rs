//! The root cause of a Flink failure, read out of an exception-history entry.
//!
//! A Flink stack trace names the wrapper first (`AsynchronousException:
//! Caught exception while processing timer.`) and the cause thousands of
//! characters further down, in its last `Caused by:`. PyFlink failures go one
//! step further: the innermost Java cause is `RuntimeException: Error
//! received from SDK harness ... Traceback (most recent call last):` and the
//! Python exceptions are lines inside that message.

/// The most of a stack trace kept after the summary (the message fitting of
/// each platform cuts further when it must).
const TRACE_KEEP: usize = 4000;

/// A cause summary: the lines a reader needs first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cause {
    /// Root cause first: Python exception lines (raise order) when the
    /// failure came from a Python UDF, then the innermost `Caused by:` line
    /// (or the trace's first line when nothing caused it).
    pub(crate) summary: Vec<String>,
    /// The trace itself, cut to [`TRACE_KEEP`] characters at a line end.
    pub(crate) trace: String,
}

impl Cause {
    /// Summary, a blank line, then the (cut) trace.
    pub(crate) fn text(&self) -> String {
        let mut out = self.summary.join("\n");
        if !self.trace.is_empty() && self.summary.first().is_none_or(|s| s != &self.trace) {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            out.push_str(&self.trace);
        }
        out
    }
}

/// Reads the cause out of `trace` (falling back to `name` when there is no
/// trace).
pub(crate) fn cause_of(trace: &str, name: &str) -> Cause {
    let trace = trace.trim();
    if trace.is_empty() {
        return Cause {
            summary: vec![name.trim().to_owned()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            trace: String::new(),
        };
    }
    let lines: Vec<&str> = trace.lines().collect();
    let innermost = lines.iter().rposition(|l| l.starts_with("Caused by: "));
    let mut summary = Vec::new();
    let head = innermost.unwrap_or(0);
    if lines
        .get(head)
        .is_some_and(|l| l.contains("Traceback (most recent call last):"))
    {
        summary.extend(python_exceptions(&lines[head.saturating_add(1)..]));
    }
    if let Some(line) = lines.get(head) {
        let line = line.trim_end();
        summary.push(if innermost.is_some() {
            line.to_owned()
        } else {
            first_line_only(line)
        });
    }
    Cause {
        summary,
        trace: cut(trace, TRACE_KEEP),
    }
}

fn first_line_only(line: &str) -> String {
    line.chars().take(1000).collect()
}

/// The exception lines of a Python traceback embedded in a Java message,
/// in the order Python printed them (a `raise ... from cause` chain prints
/// the cause first): lines at column 0 that look like `Name: message` or
/// `module.Name: message`, up to the first Java frame (`\tat `).
fn python_exceptions(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for line in lines {
        if line.starts_with('\t') || line.starts_with("Caused by: ") {
            break;
        }
        if line.starts_with(' ') || line.is_empty() {
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            continue;
        };
        let is_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let looks_like_exception = [
            "Error",
            "Exception",
            "Exit",
            "Interrupt",
            "Warning",
            "Failure",
        ]
        .iter()
        .any(|s| name.ends_with(s));
        if is_name && looks_like_exception {
            out.push(first_line_only(line.trim_end()));
        }
    }
    out
}

/// At most `max` characters of `s`, cut at a line end when one is close,
/// with a note of what was left out.
fn cut(s: &str, max: usize) -> String {
    let total = s.chars().count();
    if total <= max {
        return s.to_owned();
    }
    let end = s.char_indices().nth(max).map_or(s.len(), |(i, _)| i);
    let mut kept = &s[..end];
    if let Some(nl) = kept.rfind('\n').filter(|nl| *nl > end / 2) {
        kept = &kept[..nl];
    }
    let left = total.saturating_sub(kept.chars().count());
    format!("{kept}\n… ({left} more characters of the trace in the Flink UI)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_caused_by_first() {
        let t = "org.apache.flink.runtime.client.JobInitializationException: Could not start the JobMaster.\n\tat a.b(C.java:1)\nCaused by: java.util.concurrent.CompletionException: x\n\tat d\nCaused by: java.nio.file.FileAlreadyExistsException: /ckpt/regular-file\n\tat e\n";
        let c = cause_of(t, "x");
        assert_eq!(
            c.summary,
            ["Caused by: java.nio.file.FileAlreadyExistsException: /ckpt/regular-file"]
        );
        assert!(c.text().ends_with("\tat e"));
    }

    #[test]
    fn python_lines_inside_the_harness_message() {
        let t = "org.apache.flink.runtime.taskmanager.AsynchronousException: Caught exception while processing timer.\n\tat x\nCaused by: java.lang.RuntimeException: Error received from SDK harness for instruction 1: Traceback (most recent call last):\n  File \"job.py\", line 75, in eval\n    raise IllegalStateException(\"orders-etl boom\")\nIllegalStateException: orders-etl boom\n\nThe above exception was the direct cause of the following exception:\n\nTraceback (most recent call last):\n  File \"job.py\", line 77, in eval\n    raise RuntimeError(\"job failed\") from cause\nRuntimeError: job failed\n\n\tat java.base/x\n";
        let c = cause_of(t, "");
        assert_eq!(
            c.summary,
            [
                "IllegalStateException: orders-etl boom",
                "RuntimeError: job failed",
                "Caused by: java.lang.RuntimeException: Error received from SDK harness for instruction 1: Traceback (most recent call last):"
            ]
        );
    }

    #[test]
    fn no_cause_and_long_traces() {
        let c = cause_of("java.lang.IllegalStateException: boom\n\tat a", "ignored");
        assert_eq!(c.summary, ["java.lang.IllegalStateException: boom"]);
        assert_eq!(cause_of("", "java.lang.Oops").summary, ["java.lang.Oops"]);
        let long = format!("E: x\n{}", "\tat frame(F.java:1)\n".repeat(2000));
        let c = cause_of(&long, "");
        assert!(c.trace.chars().count() < TRACE_KEEP + 100);
        assert!(
            c.trace
                .ends_with("characters of the trace in the Flink UI)")
        );
        // Multi-byte text is cut on a character boundary.
        let wide = "é".repeat(TRACE_KEEP * 2);
        assert!(cut(&wide, TRACE_KEEP).starts_with('é'));
    }
}
