//! What is wrong with a config file: each problem with file, line, column, key, what is wrong
//! and what to write instead.

use std::fmt;
use std::ops::Range;

use super::raw::{Kind, SCHEMA, kind_of};

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key, e.g. `[monitor] interval` or `[[server]] #2 name`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub fix: String,
}

/// Everything wrong with a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or [`BUILTIN_NAME`](super::BUILTIN_NAME)).
    pub file: String,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} has {n} problem{}:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            if p.line > 0 {
                write!(f, "  {}:{}:{}: ", self.file, p.line, p.column)?;
            } else {
                write!(f, "  {}: ", self.file)?;
            }
            write!(f, "{}: {}", p.key, p.message)?;
            if !p.fix.is_empty() {
                write!(f, "\n      fix: {}", p.fix)?;
            }
            if !std::ptr::eq(p, self.problems.last().expect("a problem")) {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Collects problems with their positions.
pub(super) struct Problems<'a> {
    /// The file's text, for positions.
    pub(super) source: &'a str,
    /// The problems so far.
    pub(super) list: Vec<Problem>,
}

impl Problems<'_> {
    pub(super) fn add(
        &mut self,
        span: Option<Range<usize>>,
        key: &str,
        message: String,
        fix: impl Into<String>,
    ) {
        let (line, column) = span.map_or((0, 0), |s| line_col(self.source, s.start));
        self.list.push(Problem {
            line,
            column,
            key: key.to_owned(),
            message,
            fix: fix.into(),
        });
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub(super) fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, source[line_start..offset].chars().count() + 1)
}

/// The `[table] key` a byte offset belongs to, read from the text around it: the nearest table
/// header above and the `key =` at the start of the offset's line.
pub(super) fn key_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let line = &source[line_start..line_end];
    let mut table = String::new();
    // Array tables ([[server]], [[source]], [[alert]]) are counted per name: "[[alert]] #2".
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for l in source[..line_start].lines() {
        let t = l.trim();
        if let Some(rest) = t.strip_prefix("[[") {
            let name = rest.split("]]").next().unwrap_or(rest).trim();
            let n = counts.entry(name.to_owned()).or_default();
            *n += 1;
            table = format!("[[{name}]] #{n}");
        } else if t.starts_with('[') {
            table = t.split(']').next().unwrap_or(t).to_owned() + "]";
        }
    }
    let trimmed = line.trim();
    if trimmed.starts_with('[') {
        return trimmed.to_owned();
    }
    match trimmed.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() => {
            if table.is_empty() {
                k.trim().to_owned()
            } else {
                format!("{table} {}", k.trim())
            }
        }
        _ => {
            if table.is_empty() {
                "(top level)".to_owned()
            } else {
                table
            }
        }
    }
}

/// The fix for a problem the TOML reader found at `offset`, decided from what is written
/// there and what the schema expects of that key — never from the reader's wording, so an
/// upgrade of the toml crate can't silently change or lose a fix.
pub(super) fn fix_at(source: &str, offset: usize) -> String {
    let offset = offset.min(source.len());
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |i| offset + i);
    let line = source[line_start..line_end].trim();
    let table = table_at(source, line_start);
    if line.starts_with('[') {
        return header_fix(line);
    }
    let Some((key, value)) = line.split_once('=') else {
        return "write key = value, one per line".into();
    };
    let (key, value) = (key.trim(), value.trim());
    if table.is_empty() && key == "server" {
        return "write each server as its own [[server]] table with name = \"matrix.org\"".into();
    }
    if value.starts_with('"') && !value[1..].contains('"') {
        return "close the string with a double quote on the same line".into();
    }
    let earlier = &source[section_start(source, line_start)..line_start];
    if earlier
        .lines()
        .filter_map(|l| l.split_once('='))
        .any(|(k, _)| k.trim() == key)
    {
        return "keep only one of the two definitions".into();
    }
    let Some((_, keys)) = SCHEMA.iter().find(|(t, _)| *t == table) else {
        return "see the example config shipped as servers.toml".into();
    };
    if table == "[alert]" && ["access_token", "token", "secret", "password"].contains(&key) {
        return "never write a secret in the config: put it in a file only mxping can read and \
                name the file (access_token_file, or secret_file for a webhook), or use \
                access_token_env"
            .into();
    }
    let Some(kind) = kind_of(&table, key) else {
        let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        return format!(
            "remove the key or correct its spelling; the valid keys here are {}",
            names.join(", ")
        );
    };
    let quoted = value.starts_with('"') || value.starts_with('\'');
    match kind {
        Kind::Integer if quoted => "write the number without quotes".into(),
        Kind::Bool => "write true or false, without quotes".into(),
        Kind::List => "write a list, e.g. [\"a\", \"b\"]".into(),
        Kind::Duration if !quoted => "put the duration in double quotes, e.g. \"30s\"".into(),
        Kind::Text if !quoted => "put the value in double quotes".into(),
        Kind::Table => "write one entry per language, e.g. description.en = \"…\"".into(),
        _ => "see the example config shipped as servers.toml".into(),
    }
}

/// The fix for a table header line.
fn header_fix(line: &str) -> String {
    let Some(name) = header_name(line) else {
        return "close the table name with ], e.g. [monitor]".into();
    };
    let name = name.as_str();
    if name == "[server]" {
        // The one thing a [[server]] can lack: its required name.
        return "give every [[server]] a name, e.g. name = \"matrix.org\"".into();
    }
    if SCHEMA.iter().any(|(t, _)| *t == name) {
        return format!("keep only one [{name}] table");
    }
    let tables: Vec<String> = SCHEMA.iter().map(|(t, _)| format!("[{t}]")).collect();
    format!(
        "remove the table or correct its spelling; the tables are {}",
        tables.join(", ")
    )
}

/// The table the line at `line_start` belongs to: `monitor`, `[server]` for `[[server]]`, or
/// empty at the top level.
fn table_at(source: &str, line_start: usize) -> String {
    source[..line_start]
        .lines()
        .rev()
        .find_map(|l| header_name(l.trim()))
        .unwrap_or_default()
}

/// The table a header line names, as [`SCHEMA`] writes it: `monitor` for `[monitor]`,
/// `[server]` for `[[server]]`.
fn header_name(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("[[") {
        return rest
            .split_once("]]")
            .map(|(name, _)| format!("[{}]", name.trim()));
    }
    line.strip_prefix('[')?
        .split_once(']')
        .map(|(name, _)| name.trim().to_owned())
}

/// Where the table holding `line_start` begins (its header line, or the file's start).
fn section_start(source: &str, line_start: usize) -> usize {
    let mut start = 0;
    let mut pos = 0;
    for l in source[..line_start].split_inclusive('\n') {
        if l.trim().starts_with('[') {
            start = pos;
        }
        pos += l.len();
    }
    start
}
