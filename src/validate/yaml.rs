//! The one place that talks to the YAML parser: untrusted bytes in, a positioned node tree out.
//!
//! Formulas come from every pusher. We read the event stream of serde-saphyr's parser (its
//! re-exported `granit_parser`) in a single pass and enforce a budget as we go: bytes, nesting
//! depth, values after alias expansion, and aliases; duplicate keys are rejected with both
//! locations. Reading events rather than deserializing keeps what serde's data model drops and
//! diagnostics need: where each value stands and whether it was quoted. Scalars are resolved the
//! way the runner resolves them (PyYAML, YAML 1.1), so `yes` is a boolean here exactly as it is
//! in libtaskotron; [`yaml12_reading`] tells where a YAML 1.2 reader would differ.
//!
//! Swapping the parser means rewriting this file only.

use std::collections::HashMap;

pub use crate::config::Limits;

use serde_saphyr::granit_parser::{Event, Options, Parser, ScalarStyle, Span, StructureStyle, Tag};

/// A position in the source, both 1-based (what editors show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// How PyYAML reads a scalar.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A date or timestamp (`2017-01-18`): PyYAML gives a `date` or `datetime`, not a string.
    Timestamp(Stamp),
    Str,
}

/// A date or timestamp as the Python object PyYAML makes of it, equal where Python's are: a
/// `date`, a `datetime` without a zone (to the microsecond: PyYAML drops digits past the sixth),
/// or one with a zone, which Python compares by the instant. Python never finds a `date` equal
/// to a `datetime`, nor one with a zone equal to one without.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stamp {
    /// Days, counted as Python's `date.toordinal()` counts them (1 January of year 1 is 1).
    Date(i64),
    /// Microseconds since the start of day 0 (the day before 1 January of year 1), on the
    /// clock as written.
    Naive(i64),
    /// Microseconds since the start of day 0, in UTC.
    Aware(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `text` is the scalar after escape processing; `plain` is true when it was written unquoted.
    Scalar {
        text: String,
        plain: bool,
        read: Scalar,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

impl Node {
    /// The text of a scalar that PyYAML reads as a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar {
                text,
                read: Scalar::Str,
                ..
            } => Some(text),
            _ => None,
        }
    }

    /// The text of any scalar, whatever its type.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// A mapping key as a name: its text, or its kind when it is not a scalar (`<a list>`).
    pub fn key_name(&self) -> std::borrow::Cow<'_, str> {
        match self.scalar_text() {
            Some(t) => t.into(),
            None => format!("<{}>", self.type_name()).into(),
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(
            self.value,
            Value::Scalar {
                read: Scalar::Null,
                ..
            }
        )
    }

    /// Looks up a key of a mapping by its text.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.scalar_text() == Some(key))
            .map(|(_, v)| v)
    }

    /// A short name for the node's type, as a YAML user would say it.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            Value::Scalar { read, .. } => match read {
                Scalar::Null => "null",
                Scalar::Bool(_) => "a boolean",
                Scalar::Int(_) => "an integer",
                Scalar::Float(_) => "a number",
                Scalar::Timestamp(_) => "a date",
                Scalar::Str => "a string",
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    TooLarge,
    NotUtf8,
    Empty,
    Syntax,
    TooDeep,
    TooManyNodes,
    TooManyAliases,
    DuplicateKey,
    MultipleDocuments,
    UnsupportedTag,
    /// A character PyYAML reads differently (a line break only YAML 1.1 knows) or refuses.
    Character,
    /// A `%YAML` or `%TAG` directive.
    Directive,
    /// A merge key (`<<`) whose value is not a mapping or a list of mappings.
    Merge,
}

/// Why a document could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub pos: Pos,
    pub message: String,
    /// For a duplicate key: where the key was first defined.
    pub first: Option<Pos>,
    /// Further duplicate keys of the same document, so every one is reported at once.
    pub more: Vec<Error>,
    /// How to fix it, where that is more particular than its kind's advice.
    pub help: Option<String>,
}

impl Error {
    fn new(kind: ErrorKind, pos: Pos, message: impl Into<String>) -> Self {
        Error {
            kind,
            pos,
            message: message.into(),
            first: None,
            more: Vec::new(),
            help: None,
        }
    }

    fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// Parses one YAML document under `limits`.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<Node, Error> {
    if bytes.len() > limits.max_bytes {
        return Err(Error::new(
            ErrorKind::TooLarge,
            Pos { line: 1, column: 1 },
            format!(
                "the file is {} bytes; the limit is {} bytes",
                bytes.len(),
                limits.max_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
        Error::new(
            ErrorKind::NotUtf8,
            Pos {
                line: line as u32,
                column: column as u32,
            },
            format!(
                "invalid UTF-8 (byte 0x{:02x}); YAML files must be UTF-8",
                bytes[e.valid_up_to()]
            ),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    runner_agrees(text)?;
    Builder::new(limits).build(text)
}

/// Rejects what the runner's reader (PyYAML, YAML 1.1) would read differently from this one, or
/// refuse: the line breaks only YAML 1.1 knows (U+0085, U+2028, U+2029: PyYAML breaks the line
/// there, so a "comment" could hide keys), the characters PyYAML will not load, and directives
/// (`%YAML 1.2` would ask other tools for other rules; `%TAG` rewrites tags).
fn runner_agrees(text: &str) -> Result<(), Error> {
    let mut line = 1u32;
    let mut column = 1u32;
    let mut at_line_start = true;
    for c in text.chars() {
        let pos = Pos { line, column };
        match c {
            '\u{85}' | '\u{2028}' | '\u{2029}' => {
                let name = match c {
                    '\u{85}' => "U+0085 (NEXT LINE)",
                    '\u{2028}' => "U+2028 (LINE SEPARATOR)",
                    _ => "U+2029 (PARAGRAPH SEPARATOR)",
                };
                return Err(Error::new(
                    ErrorKind::Character,
                    pos,
                    format!("{name} is a line break to the runner's YAML 1.1 reader but not to YAML 1.2 readers; the two would read different keys"),
                ));
            }
            '\t' | '\n' | '\r' => {}
            '\u{feff}' => {
                // PyYAML skips one at the very start (taken off above) and reads any other as
                // text; YAML 1.2 readers skip one wherever a document or a line may start.
                return Err(Error::new(
                    ErrorKind::Character,
                    pos,
                    "U+FEFF (BYTE ORDER MARK) is allowed only as the file's first character: elsewhere it is invisible, and YAML readers disagree whether it is text",
                ));
            }
            c if pyyaml_refuses(c) => {
                return Err(Error::new(
                    ErrorKind::Character,
                    pos,
                    format!(
                        "the character U+{:04X} is not allowed: the runner's YAML reader refuses it",
                        c as u32
                    ),
                ));
            }
            '%' if at_line_start => {
                return Err(Error::new(
                    ErrorKind::Directive,
                    pos,
                    "YAML directives (`%YAML`, `%TAG`) are not allowed in a formula: the runner reads YAML 1.1 whatever a directive says",
                ));
            }
            _ => {}
        }
        at_line_start = c == '\n';
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    Ok(())
}

/// A mapping key must be a scalar with a value: PyYAML cannot use a list or a mapping as a key,
/// and refuses an empty one where no `?` introduces it (`: v`, `[a, : v]`, `{: v}`).
fn key_is_plain_value(key: &Node) -> Result<(), Error> {
    match &key.value {
        Value::Scalar { text, plain, .. } if !(*plain && text.is_empty()) => Ok(()),
        Value::Scalar { .. } => Err(Error::new(
            ErrorKind::Syntax,
            key.pos,
            "a mapping key is missing before this `:` (the runner's reader refuses an empty key)",
        )
        .help("write the key before the `:`, or quote a `:` that is text")),
        _ => Err(Error::new(
            ErrorKind::Syntax,
            key.pos,
            "a mapping key must be a single value, not a list or a mapping (the runner's reader refuses it)",
        )),
    }
}

/// Two things PyYAML refuses that YAML 1.2 readers take, checked on the text (outside quoted
/// and block scalars and comments): a tab where a token could start (indentation, between a key
/// and its value, inside a plain scalar), and a `:` with no key before it (`: value` at the
/// start of a line or after `- `). Both are refused here too, rather than read differently.
fn tabs_where_pyyaml_reads_them(text: &str, quoted: &[(usize, usize)]) -> Result<(), Error> {
    // The ranges in order, overlaps joined, then walked once along the text (a test of every
    // range at every character took a 64 KB formula of 16,000 quoted values 0.4 s).
    let mut ranges = quoted.to_vec();
    ranges.sort_unstable();
    let mut joined: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match joined.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => joined.push((a, b)),
        }
    }
    let mut next = 0;
    let mut inside = |i: usize| {
        while joined.get(next).is_some_and(|&(_, b)| b <= i) {
            next += 1;
        }
        joined.get(next).is_some_and(|&(a, _)| a <= i)
    };
    let chars: Vec<char> = text.chars().collect();
    let (mut line, mut column) = (1u32, 1u32);
    let mut comment = false;
    let mut prev_blank = true;
    // Only blanks and `- ` so far on this line: a `:` here has no key.
    let mut line_head = true;
    for (i, &c) in chars.iter().enumerate() {
        if c == '\n' {
            line += 1;
            column = 1;
            comment = false;
            prev_blank = true;
            line_head = true;
            continue;
        }
        let pos = Pos { line, column };
        if !comment && !inside(i) {
            match c {
                '#' if prev_blank => comment = true,
                '\t' => {
                    return Err(Error::new(
                        ErrorKind::Character,
                        pos,
                        "a tab here is refused by the runner's YAML reader: tabs belong only in quoted strings, block scalars and comments; use spaces",
                    ))
                }
                ':' if line_head && chars.get(i + 1).is_none_or(|n| n.is_whitespace()) => {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        pos,
                        "a mapping key is missing before this `:` (the runner's reader refuses an empty key)",
                    ))
                }
                _ => {}
            }
        }
        let after_dash = c == ' ' && i > 0 && chars[i - 1] == '-';
        line_head = line_head
            && (c == ' ' || (c == '-' && chars.get(i + 1).is_none_or(|n| *n == ' ')) || after_dash);
        prev_blank = c == ' ' || c == '\t';
        column += 1;
    }
    Ok(())
}

/// An anchor's or alias's name as PyYAML reads it: ASCII letters, digits, `-` and `_`, then a
/// blank or one of `,]}:?`. YAML 1.2 readers take any character but blanks and `,[]{}`, so
/// `&base:` names an anchor `base:` here and, to PyYAML, anchors an empty key `base`, with the
/// value below it a mapping's instead of the anchored node; `&a[1]` anchors a list here and
/// stops PyYAML. Such names are refused rather than read differently.
fn anchor_name(what: &str, name: &str, text: &str, span: Span, pos: Pos) -> Result<(), Error> {
    let bad = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'));
    let after = span
        .byte_range()
        .and_then(|r| text.get(r.end..))
        .and_then(|rest| rest.chars().next())
        .filter(|c| matches!(c, '[' | '{'));
    let Some(c) = bad.or(after) else {
        return Ok(());
    };
    let sigil = if what == "anchor" { '&' } else { '*' };
    Err(Error::new(
        ErrorKind::Syntax,
        pos,
        format!(
            "the {what} `{sigil}{name}` is read differently by the runner's YAML 1.1 reader, which ends the name before `{c}`"
        ),
    )
    .help("anchor and alias names may use only ASCII letters, digits, `-` and `_`, and are followed by a space: `key: &name value`"))
}

/// A tag on a value left empty (`[!!null, x]`) must be followed by a space or the end of its
/// line: PyYAML reads a tag up to the next blank, taking `,` and `]` into it, and refuses one
/// followed by `}`; YAML 1.2 readers end it at any of those. (Both refuse a tag followed by
/// anything else.) `span` is the value's, which starts right after the tag.
fn tag_then_space(tag: &Tag, text: &str, span: Span, pos: Pos) -> Result<(), Error> {
    let Some(r) = span.byte_range().filter(|r| r.is_empty()) else {
        return Ok(());
    };
    let Some(c) = text
        .get(r.start..)
        .and_then(|rest| rest.chars().next())
        .filter(|c| !matches!(c, ' ' | '\n' | '\r'))
    else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::Syntax,
        pos,
        format!(
            "the tag `{}{}` is followed by `{c}`, which the runner's YAML 1.1 reader reads as part of the tag or refuses",
            tag.original_handle(),
            tag.suffix()
        ),
    )
    .help("put a space after the tag, or remove it"))
}

/// A plain (unquoted) scalar inside `[...]` or `{...}` that PyYAML reads differently: it ends
/// such a scalar at any `?` (and takes the `?` for a key), and cannot start one with `:`.
fn plain_in_flow(value: &str, pos: Pos) -> Result<(), Error> {
    let c = if value.starts_with(':') {
        ':'
    } else if value.contains('?') {
        '?'
    } else {
        return Ok(());
    };
    Err(Error::new(
        ErrorKind::Syntax,
        pos,
        format!(
            "`{value}` inside `[...]` or `{{...}}` is read differently by the runner's YAML 1.1 reader, which takes its `{c}` for a key indicator"
        ),
    )
    .help(format!("quote it: {}", serde_json::Value::from(value))))
}

/// A block scalar (`|`, `>`) that is the whole document, with text at the start of a line:
/// PyYAML wants that text indented by at least one space (else the scalar is empty there and
/// the text after it a new node), YAML 1.2 readers do not.
fn block_scalar_at_top(text: &str, span: Span, value: &str, pos: Pos) -> Result<(), Error> {
    // The event's span starts at the scalar's first text, after its indentation.
    let at_line_start = span
        .byte_range()
        .is_some_and(|r| r.start > 0 && text.as_bytes().get(r.start - 1) == Some(&b'\n'));
    if value.is_empty() || !at_line_start {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::Syntax,
        pos,
        "the text of a block scalar (`|`, `>`) that is the whole document must be indented by at least one space for the runner's YAML 1.1 reader",
    )
    .help("indent the text, or make the document a mapping (a formula is one)"))
}

/// PyYAML's reader accepts tab, LF, CR, U+0020-U+007E, U+0085, U+00A0-U+D7FF, U+E000-U+FFFD and
/// U+10000 and above; anything else stops the load.
fn pyyaml_refuses(c: char) -> bool {
    let u = c as u32;
    !matches!(u, 0x20..=0x7E | 0x85 | 0xA0..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    /// A mapping's entries, the key waiting for its value, and where each key but `<<` is.
    Map(
        Pos,
        usize,
        Vec<(Node, Node)>,
        Option<Node>,
        HashMap<KeyId, usize>,
    ),
}

struct Builder<'l> {
    limits: &'l Limits,
    /// Character ranges of quoted and block scalars, where tabs are text.
    quoted: Vec<(usize, usize)>,
    /// Duplicate keys found so far: reading goes on so that all are reported.
    duplicates: Vec<Error>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    aliases: usize,
}

impl<'l> Builder<'l> {
    fn new(limits: &'l Limits) -> Self {
        Builder {
            limits,
            quoted: Vec::new(),
            duplicates: Vec::new(),
            anchors: HashMap::new(),
            nodes: 0,
            aliases: 0,
        }
    }

    fn build(mut self, text: &str) -> Result<Node, Error> {
        let mut stack: Vec<Frame> = Vec::new();
        // For each open collection, whether it is written in flow style (`[...]`, `{...}`).
        let mut flows: Vec<bool> = Vec::new();
        // Where each anchor name was defined.
        let mut anchor_names: HashMap<String, Pos> = HashMap::new();
        let mut root: Option<Node> = None;
        let mut documents = 0usize;
        let mut options = Options::default();
        options.emit_anchor_events = true;
        // `|` text that ends the file without a line break keeps none, as in PyYAML.
        options.block_scalar_eof_without_line_feed = true;
        for item in Parser::new_from_str_with_options(text, options) {
            let (event, span) = item.map_err(|e| {
                let m = e.marker();
                let info = e.info().to_lowercase();
                let kind = if info.contains("recursion") || info.contains("depth") {
                    ErrorKind::TooDeep
                } else {
                    ErrorKind::Syntax
                };
                Error::new(
                    kind,
                    Pos {
                        line: m.line() as u32,
                        column: m.col() as u32 + 1,
                    },
                    e.info().to_string(),
                )
            })?;
            let pos = Pos {
                line: span.start.line() as u32,
                column: span.start.col() as u32 + 1,
            };
            // A scalar written over more than one line, which PyYAML never takes for a key.
            let multiline =
                matches!(event, Event::Scalar(..)) && span.start.line() != span.end.line();
            let finished = match event {
                Event::DocumentStart(..) => {
                    documents += 1;
                    if documents > 1 {
                        return Err(Error::new(
                            ErrorKind::MultipleDocuments,
                            pos,
                            "a formula is one YAML document; this file holds more than one",
                        ));
                    }
                    None
                }
                Event::Scalar(value, style, anchor, tag) => {
                    self.count(pos, 1)?;
                    if style != ScalarStyle::Plain {
                        self.quoted.push((span.start.index(), span.end.index()));
                    }
                    if let Some(t) = &tag {
                        tag_then_space(t, text, span, pos)?;
                    }
                    if style == ScalarStyle::Plain && flows.last() == Some(&true) {
                        plain_in_flow(&value, pos)?;
                    }
                    if stack.is_empty()
                        && matches!(style, ScalarStyle::Literal | ScalarStyle::Folded)
                    {
                        block_scalar_at_top(text, span, &value, pos)?;
                    }
                    let tag = tag.map(|t| (t.handle().to_string(), t.suffix().to_string()));
                    // A node the document leaves out (`[a, : b]`'s key, `a:`'s value) comes as
                    // `~` with an empty span: it is nothing, and an empty key is refused below.
                    let value = if style == ScalarStyle::Plain
                        && span.byte_range().is_some_and(|r| r.is_empty())
                    {
                        String::new()
                    } else {
                        value.into_owned()
                    };
                    let node = scalar(value, style, tag, pos)?;
                    self.remember(anchor, &node);
                    Some(node)
                }
                Event::Anchor(_, name) => {
                    anchor_name("anchor", &name, text, span, pos)?;
                    // YAML 1.2 lets a name be defined again (aliases then mean the latest);
                    // PyYAML refuses the document.
                    if let Some(first) = anchor_names.get(name.as_ref()) {
                        return Err(Error::new(
                            ErrorKind::Syntax,
                            pos,
                            format!(
                                "the anchor `&{name}` is defined twice in the document (first at line {}, column {}), which the runner's YAML reader refuses",
                                first.line, first.column
                            ),
                        )
                        .help("rename one of them, and the aliases meant for it"));
                    }
                    anchor_names.insert(name.into_owned(), pos);
                    None
                }
                Event::Alias(id) => {
                    let name = span.slice(text).unwrap_or_default();
                    anchor_name("alias", name.trim_start_matches('*'), text, span, pos)?;
                    self.aliases += 1;
                    let node = self.anchors.get(&id).cloned().ok_or_else(|| {
                        Error::new(ErrorKind::Syntax, pos, "alias to an unknown anchor")
                    })?;
                    let size = count_nodes(&node);
                    self.count(pos, size)?;
                    Some(Node { pos, ..node })
                }
                Event::SequenceStart(style, anchor, tag) => {
                    collection_tag(tag.as_deref(), "seq", pos)?;
                    self.count(pos, 1)?;
                    self.depth_check(&stack, pos)?;
                    flows.push(style == StructureStyle::Flow);
                    stack.push(Frame::Seq(pos, anchor, Vec::new()));
                    None
                }
                Event::MappingStart(style, anchor, tag) => {
                    collection_tag(tag.as_deref(), "map", pos)?;
                    self.count(pos, 1)?;
                    self.depth_check(&stack, pos)?;
                    flows.push(style == StructureStyle::Flow);
                    stack.push(Frame::Map(pos, anchor, Vec::new(), None, HashMap::new()));
                    None
                }
                Event::SequenceEnd => match (stack.pop(), flows.pop()) {
                    (Some(Frame::Seq(p, anchor, items)), _) => {
                        let node = Node {
                            pos: p,
                            value: Value::Seq(items),
                        };
                        self.remember(anchor, &node);
                        Some(node)
                    }
                    _ => return Err(Error::new(ErrorKind::Syntax, pos, "unbalanced sequence")),
                },
                Event::MappingEnd => match (stack.pop(), flows.pop()) {
                    (Some(Frame::Map(p, anchor, entries, ..)), _) => {
                        let node = Node {
                            pos: p,
                            value: Value::Map(merge_keys(entries)?),
                        };
                        self.remember(anchor, &node);
                        Some(node)
                    }
                    _ => return Err(Error::new(ErrorKind::Syntax, pos, "unbalanced mapping")),
                },
                _ => None,
            };
            if let Some(node) = finished {
                let is_key = matches!(stack.last(), Some(Frame::Map(_, _, _, None, _)));
                if is_key && multiline {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        node.pos,
                        "a key written over more than one line, which the runner's YAML reader refuses",
                    )
                    .help("write the key on one line"));
                }
                if !is_key && is_merge_key(&node) {
                    return Err(Error::new(
                        ErrorKind::Merge,
                        node.pos,
                        "`<<` is YAML 1.1's merge key, which the runner's reader cannot load anywhere but as a key",
                    )
                    .help("quote it if it is text: \"<<\""));
                }
                match stack.last_mut() {
                    Some(Frame::Seq(_, _, items)) => items.push(node),
                    Some(Frame::Map(_, _, entries, pending, keys)) => match pending.take() {
                        None => *pending = Some(node),
                        Some(key) => {
                            key_is_plain_value(&key)?;
                            let id = key_id(&key);
                            let first = id.as_ref().and_then(|id| keys.get(id));
                            if let Some(first) = first.and_then(|&i| entries.get(i)) {
                                let mut e = Error::new(
                                    ErrorKind::DuplicateKey,
                                    key.pos,
                                    format!(
                                        "duplicate key `{}`",
                                        key.scalar_text().unwrap_or("<complex key>")
                                    ),
                                );
                                e.first = Some(first.0.pos);
                                self.duplicates.push(e);
                            } else {
                                if let Some(id) = id.filter(|_| !is_merge_key(&key)) {
                                    keys.insert(id, entries.len());
                                }
                                entries.push((key, node));
                            }
                        }
                    },
                    None => root = Some(node),
                }
            }
        }
        tabs_where_pyyaml_reads_them(text, &self.quoted)?;
        if !self.duplicates.is_empty() {
            let mut first = self.duplicates.remove(0);
            first.more = std::mem::take(&mut self.duplicates);
            return Err(first);
        }
        root.ok_or_else(|| {
            Error::new(
                ErrorKind::Empty,
                Pos { line: 1, column: 1 },
                "the file holds no YAML document",
            )
        })
    }

    fn count(&mut self, pos: Pos, n: usize) -> Result<(), Error> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > self.limits.max_nodes {
            let e = Error::new(
                ErrorKind::TooManyNodes,
                pos,
                format!(
                    "the document expands to more than {} values (alias expansion counts)",
                    self.limits.max_nodes
                ),
            );
            // Without aliases, the values are all written out: the advice about aliases would
            // not apply.
            return Err(if self.aliases == 0 {
                e.help("keep data beside the formula in files of its own; the limit is `taskhook.maxYamlNodes`")
            } else {
                e
            });
        }
        if self.aliases > self.limits.max_aliases {
            return Err(Error::new(
                ErrorKind::TooManyAliases,
                pos,
                format!("more than {} aliases", self.limits.max_aliases),
            ));
        }
        Ok(())
    }

    fn depth_check(&self, stack: &[Frame], pos: Pos) -> Result<(), Error> {
        if stack.len() >= self.limits.max_depth {
            return Err(Error::new(
                ErrorKind::TooDeep,
                pos,
                format!("nesting deeper than {} levels", self.limits.max_depth),
            ));
        }
        Ok(())
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.value {
        Value::Scalar { .. } => 1,
        Value::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

/// What Python tells a key PyYAML makes apart by (`None` for a list or a mapping): equal for
/// exactly the keys Python finds equal. `True == 1 == 1.0`, and an integer equals a float only
/// where the float is that integer exactly; `0x10` is `16`; every `.nan` is the one NaN object
/// PyYAML keeps, so it is one key; `-0.0` is `0.0`; dates as [`Stamp`] says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    Null,
    /// A number a float holds exactly: its bits, `-0.0` and NaN made one.
    Number(u64),
    /// An integer no float holds exactly: no float equals it.
    Int(i64),
    Stamp(Stamp),
    Str(String),
}

fn key_id(n: &Node) -> Option<KeyId> {
    let Value::Scalar { text, read, .. } = &n.value else {
        return None;
    };
    let float = |f: f64| {
        KeyId::Number(match f {
            f if f.is_nan() => f64::NAN.to_bits(),
            0.0 => 0,
            f => f.to_bits(),
        })
    };
    Some(match read {
        Scalar::Null => KeyId::Null,
        Scalar::Bool(b) => float(f64::from(u8::from(*b))),
        Scalar::Int(i) if (*i as f64) as i128 == i128::from(*i) => float(*i as f64),
        Scalar::Int(i) => KeyId::Int(*i),
        Scalar::Float(f) => float(*f),
        Scalar::Timestamp(stamp) => KeyId::Stamp(*stamp),
        Scalar::Str => KeyId::Str(text.clone()),
    })
}

/// Applies YAML 1.1 merge keys (`<<: *base`) exactly as PyYAML's `flatten_mapping` does: the
/// merged pairs come first, in the order of the `<<` entries, a list's mappings in reverse (so
/// the first mapping of a list wins), then the mapping's own pairs; the last occurrence of a key
/// wins. A value that is not a mapping or a list of mappings is an error, as it is to PyYAML.
fn merge_keys(entries: Vec<(Node, Node)>) -> Result<Vec<(Node, Node)>, Error> {
    if !entries.iter().any(|(k, _)| is_merge_key(k)) {
        return Ok(entries);
    }
    let mut merge = Vec::new();
    let mut own = Vec::new();
    for (k, v) in entries {
        if !is_merge_key(&k) {
            own.push((k, v));
            continue;
        }
        let not_mappings = || {
            Error::new(
                ErrorKind::Merge,
                v.pos,
                "the merge key `<<` takes a mapping or a list of mappings; the runner's reader rejects anything else",
            )
        };
        match &v.value {
            Value::Map(pairs) => merge.extend(pairs.iter().cloned()),
            Value::Seq(items) => {
                let mut maps = Vec::new();
                for item in items {
                    match &item.value {
                        Value::Map(pairs) => maps.push(pairs.clone()),
                        _ => return Err(not_mappings()),
                    }
                }
                for pairs in maps.into_iter().rev() {
                    merge.extend(pairs);
                }
            }
            Value::Scalar { .. } => return Err(not_mappings()),
        }
    }
    let mut out: Vec<(Node, Node)> = Vec::new();
    let mut at: HashMap<KeyId, usize> = HashMap::new();
    for (k, v) in merge.into_iter().chain(own) {
        let Some(id) = key_id(&k) else {
            out.push((k, v));
            continue;
        };
        match at.get(&id).and_then(|&i| out.get_mut(i)) {
            Some(slot) => slot.1 = v,
            None => {
                at.insert(id, out.len());
                out.push((k, v));
            }
        }
    }
    Ok(out)
}

/// `<<` as a plain key (or tagged `!!merge`): the merge key. Quoted, it is an ordinary string.
fn is_merge_key(k: &Node) -> bool {
    k.scalar_text() == Some("<<") && is_plain(k)
}

/// Tags on a mapping or a sequence: only the standard ones (`!!map`, `!!seq`, `!`) are read as
/// the runner's safe loader reads them; anything else (`!!python/object/apply:...`) is refused.
fn collection_tag(tag: Option<&Tag>, kind: &str, pos: Pos) -> Result<(), Error> {
    let Some(tag) = tag else {
        return Ok(());
    };
    let (handle, suffix) = (tag.handle(), tag.suffix());
    if (handle == "tag:yaml.org,2002:" && suffix == kind) || (handle == "!" && suffix.is_empty()) {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnsupportedTag,
        pos,
        format!("the tag `{handle}{suffix}` is not supported in a formula (the runner's safe loader rejects it)"),
    ))
}

fn is_plain(node: &Node) -> bool {
    matches!(node.value, Value::Scalar { plain: true, .. })
}

fn scalar(
    text: String,
    style: ScalarStyle,
    tag: Option<(String, String)>,
    pos: Pos,
) -> Result<Node, Error> {
    // A tag says what the value is: its text is not resolved, as an untagged plain one is.
    let plain = style == ScalarStyle::Plain && tag.is_none();
    let read = match tag {
        Some((handle, suffix)) if handle == "tag:yaml.org,2002:" => match suffix.as_str() {
            "str" => Scalar::Str,
            "null" => Scalar::Null,
            "bool" | "int" | "float" | "timestamp" => {
                // Taken only where the text already reads as that type: PyYAML's constructors
                // read some other texts too (`!!float 1`), refuse others (`!!int yes`).
                let read = resolved(resolve11(&text), &text, pos)?;
                let same = matches!(
                    (suffix.as_str(), &read),
                    ("bool", Scalar::Bool(_))
                        | ("int", Scalar::Int(_))
                        | ("float", Scalar::Float(_))
                        | ("timestamp", Scalar::Timestamp(_))
                );
                if !same {
                    return Err(Error::new(
                        ErrorKind::UnsupportedTag,
                        pos,
                        format!("the tag `!!{suffix}` on `{text}`, which does not read as that type without it (the runner's loader would read it otherwise, or fail); remove the tag"),
                    ));
                }
                read
            }
            other => {
                return Err(Error::new(
                    ErrorKind::UnsupportedTag,
                    pos,
                    format!("the tag `!!{other}` is not supported in a formula"),
                ))
            }
        },
        Some((handle, suffix)) if handle == "!" && suffix.is_empty() => Scalar::Str,
        Some((handle, suffix)) => {
            return Err(Error::new(
                ErrorKind::UnsupportedTag,
                pos,
                format!("the tag `{handle}{suffix}` is not supported in a formula (the runner's safe loader rejects it)"),
            ))
        }
        None if plain => resolved(resolve11(&text), &text, pos)?,
        None => Scalar::Str,
    };
    Ok(Node {
        pos,
        value: Value::Scalar { text, plain, read },
    })
}

/// A plain scalar's reading, or why it cannot be taken.
fn resolved(r: Resolved, text: &str, pos: Pos) -> Result<Scalar, Error> {
    match r {
        Resolved::Read(read) => Ok(read),
        Resolved::TooLarge(what) => Err(Error::new(
            ErrorKind::Syntax,
            pos,
            format!("`{text}` is written as {what}"),
        )
        .help(quote_it(text))),
        Resolved::Fails(why) => Err(Error::new(
            ErrorKind::Syntax,
            pos,
            format!("the runner's YAML reader cannot load `{text}`: {why}"),
        )
        .help(quote_it(text))),
    }
}

fn quote_it(text: &str) -> String {
    format!("quote it if it is text: {}", serde_json::Value::from(text))
}

/// What PyYAML makes of a plain scalar: the type its implicit resolvers give the text (bool,
/// float, int, null, timestamp, and `=`, tried in its order), then what that type's constructor
/// makes of it.
enum Resolved {
    Read(Scalar),
    /// A number past what this reader holds (an integer past i64, say): what it is written as.
    TooLarge(&'static str),
    /// A type whose constructor then fails: the reason, for the pusher.
    Fails(String),
}

fn resolve11(text: &str) -> Resolved {
    let read = match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Scalar::Bool(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Scalar::Bool(false)
        }
        "=" => {
            return Resolved::Fails(
                "YAML 1.1 reads a lone `=` as a \"value\" node, which it cannot construct".into(),
            )
        }
        _ if float_form(text) => {
            match float_value(text) {
                Some(value) => Scalar::Float(value),
                None => return Resolved::TooLarge(
                    "a base-60 number of more parts than this reader adds up as PyYAML does (33)",
                ),
            }
        }
        _ if int_form(text) => return int_value(text),
        _ => match timestamp(text) {
            Some(Ok(stamp)) => Scalar::Timestamp(stamp),
            Some(Err(why)) => return Resolved::Fails(why),
            None => Scalar::Str,
        },
    };
    Resolved::Read(read)
}

/// `text`'s leading `-` or `+`, if any, and the rest.
fn sign(text: &str) -> (Option<u8>, &str) {
    match text.strip_prefix(['-', '+']) {
        Some(t) => (text.bytes().next(), t),
        None => (None, text),
    }
}

/// Non-empty, and every character `ok` or `_`.
fn digits_or_underscores(s: &str, ok: fn(u8) -> bool) -> bool {
    !s.is_empty() && s.bytes().all(|b| b == b'_' || ok(b))
}

/// `[0-9][0-9_]*`
fn decimal_head(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit()) && digits_or_underscores(s, |b| b.is_ascii_digit())
}

/// `(:[0-5]?[0-9])+` after the first part of a sexagesimal number.
fn sexagesimal_tail<'a>(mut parts: impl Iterator<Item = &'a str>) -> bool {
    let mut any = false;
    parts.all(|p| {
        any = true;
        match p.as_bytes() {
            [d] => d.is_ascii_digit(),
            [a, d] => (b'0'..=b'5').contains(a) && d.is_ascii_digit(),
            _ => false,
        }
    }) && any
}

/// PyYAML's float pattern: `[-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?`,
/// `\.[0-9][0-9_]*([eE][-+][0-9]+)?`, `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*`,
/// `[-+]?\.(inf|Inf|INF)`, `\.(nan|NaN|NAN)`.
fn float_form(text: &str) -> bool {
    if matches!(text, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let (signed, t) = sign(text);
    if matches!(t, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let Some((head, tail)) = t.split_once('.') else {
        return false;
    };
    let fraction = |f: &str| f.is_empty() || digits_or_underscores(f, |b| b.is_ascii_digit());
    let exponent = |e: &str| {
        e.strip_prefix(['e', 'E'])
            .and_then(|e| e.strip_prefix(['-', '+']))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let with_exponent = |tail: &str| match tail.find(['e', 'E']) {
        Some(i) => fraction(&tail[..i]) && exponent(&tail[i..]),
        None => fraction(tail),
    };
    if head.is_empty() {
        return signed.is_none()
            && tail.starts_with(|c: char| c.is_ascii_digit())
            && with_exponent(tail);
    }
    if head.contains(':') {
        let mut parts = head.split(':');
        return parts.next().is_some_and(decimal_head) && sexagesimal_tail(parts) && fraction(tail);
    }
    decimal_head(head) && with_exponent(tail)
}

/// The value of a text [`float_form`] accepts, as PyYAML's constructor computes it, to the
/// bit; `None` for a base-60 number of more than 33 parts.
fn float_value(text: &str) -> Option<f64> {
    let cleaned = text.replace('_', "").to_ascii_lowercase();
    let (sign, t) = sign(&cleaned);
    let negative = sign == Some(b'-');
    let value = match t {
        ".inf" => f64::INFINITY,
        ".nan" => return Some(f64::NAN),
        // Base 60 as PyYAML adds it up, in floats, from the last part: each part times its
        // place value 60^k, which Python rounds to a float from the exact integer. 60^k is
        // 4^k times 15^k, exact in a u128 up to k = 32; scaling by 4^k rounds nothing.
        _ if t.contains(':') => {
            let mut value = 0.0;
            for (k, part) in t.rsplit(':').enumerate() {
                let fifteens = 15u128.checked_pow(k as u32)?;
                value += part.parse::<f64>().unwrap_or(f64::NAN)
                    * (fifteens as f64 * 4f64.powi(k as i32));
            }
            value
        }
        _ => t.parse().unwrap_or(f64::NAN),
    };
    Some(if negative { -value } else { value })
}

/// PyYAML's int pattern: `[-+]?0b[0-1_]+`, `[-+]?0[0-7_]+`, `[-+]?(0|[1-9][0-9_]*)`,
/// `[-+]?0x[0-9a-fA-F_]+`, `[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+`.
fn int_form(text: &str) -> bool {
    let (_, t) = sign(text);
    if let Some(b) = t.strip_prefix("0b") {
        return digits_or_underscores(b, |b| b == b'0' || b == b'1');
    }
    if let Some(x) = t.strip_prefix("0x") {
        return digits_or_underscores(x, |b| b.is_ascii_hexdigit());
    }
    if t == "0" {
        return true;
    }
    if let Some(o) = t.strip_prefix('0') {
        return digits_or_underscores(o, |b| (b'0'..=b'7').contains(&b));
    }
    let mut parts = t.split(':');
    let head = parts.next().unwrap_or_default();
    if !(head.starts_with(|c: char| ('1'..='9').contains(&c)) && decimal_head(head)) {
        return false;
    }
    !t.contains(':') || sexagesimal_tail(parts)
}

/// The value of a text [`int_form`] accepts, as PyYAML's constructor computes it.
fn int_value(text: &str) -> Resolved {
    let cleaned = text.replace('_', "");
    let (sign, t) = sign(&cleaned);
    let negative = sign == Some(b'-');
    let radix = |digits: &str, radix: u32| {
        if digits.is_empty() {
            return Err(());
        }
        Ok(i64::from_str_radix(digits, radix).ok())
    };
    let value = if t == "0" {
        Ok(Some(0))
    } else if let Some(b) = t.strip_prefix("0b") {
        radix(b, 2)
    } else if let Some(x) = t.strip_prefix("0x") {
        radix(x, 16)
    } else if t.starts_with('0') {
        radix(t, 8)
    } else if t.contains(':') {
        Ok(t.split(':').try_fold(0i64, |total, part| {
            total
                .checked_mul(60)?
                .checked_add(part.parse::<i64>().ok()?)
        }))
    } else {
        radix(t, 10)
    };
    match value {
        Ok(Some(v)) => Resolved::Read(Scalar::Int(if negative { -v } else { v })),
        Ok(None) => Resolved::TooLarge("an integer this reader cannot hold"),
        Err(()) => Resolved::Fails("it is read as an integer with no digits".into()),
    }
}

/// PyYAML's timestamp pattern (a date `YYYY-MM-DD`, or a date with one- or two-digit month and
/// day, a time and an optional zone), and what its constructor makes of it, or why it cannot:
/// `None` when the text is no timestamp.
fn timestamp(text: &str) -> Option<Result<Stamp, String>> {
    let b = text.as_bytes();
    let digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
    let number = |s: &[u8]| s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    if b.len() < 8 || !digits(&b[..4]) || b[4] != b'-' {
        return None;
    }
    let year = number(&b[..4]);
    // Month and day: one or two digits each (exactly two for a date alone).
    let mut i = 5;
    let part = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && *i - start < 2 && b[*i].is_ascii_digit() {
            *i += 1;
        }
        (*i > start).then(|| number(&b[start..*i]))
    };
    let month = part(&mut i)?;
    let month_digits = i - 5;
    if b.get(i) != Some(&b'-') {
        return None;
    }
    i += 1;
    let day_start = i;
    let day = part(&mut i)?;
    let date_only = i == b.len();
    if date_only && (month_digits != 2 || i - day_start != 2) {
        return None;
    }
    let mut time = None;
    if !date_only {
        // `[Tt]` or `[ \t]+`, then `H?H:MM:SS`, `(\.[0-9]*)?`, `([ \t]*(Z|[-+]H?H(:MM)?))?`
        match b[i] {
            b'T' | b't' => i += 1,
            b' ' | b'\t' => {
                while i < b.len() && matches!(b[i], b' ' | b'\t') {
                    i += 1;
                }
            }
            _ => return None,
        }
        let hour = part(&mut i)?;
        let two = |i: &mut usize| {
            let s = b.get(*i..*i + 3)?;
            (s[0] == b':' && digits(&s[1..])).then(|| {
                *i += 3;
                number(&s[1..])
            })
        };
        let minute = two(&mut i)?;
        let second = two(&mut i)?;
        // PyYAML keeps six digits of a fraction, padded with zeros: microseconds.
        let mut micro = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let kept = &b[start..i.min(start + 6)];
            micro = number(kept) * 10u32.pow(6 - kept.len() as u32);
        }
        let zone_start = i;
        while i < b.len() && matches!(b[i], b' ' | b'\t') {
            i += 1;
        }
        let mut offset = None;
        match b.get(i) {
            None if i == zone_start => {}
            Some(b'Z') => {
                i += 1;
                offset = Some(0);
            }
            Some(sign @ (b'-' | b'+')) => {
                let negative = *sign == b'-';
                i += 1;
                let h = part(&mut i)?;
                let m = if b.get(i) == Some(&b':') {
                    two(&mut i)?
                } else {
                    0
                };
                offset = Some((h * 60 + m) as i64 * if negative { -1 } else { 1 });
            }
            _ => return None,
        }
        if i != b.len() {
            return None;
        }
        time = Some((hour, minute, second, micro, offset));
    }
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap_year(year) => 29,
        2 => 28,
        _ => 0,
    };
    let fails = |what: &str| Some(Err(format!("it is read as a date, and {what}")));
    if year == 0 {
        return fails("there is no year 0");
    }
    if days == 0 {
        return fails(&format!("there is no month {month}"));
    }
    if day == 0 || day > days {
        return fails(&format!("month {month} of {year} has no day {day}"));
    }
    let day = ordinal(year, month, day);
    let Some((hour, minute, second, micro, offset)) = time else {
        return Some(Ok(Stamp::Date(day)));
    };
    if hour > 23 || minute > 59 || second > 59 {
        return fails(&format!("{hour}:{minute:02}:{second:02} is no time of day"));
    }
    let seconds = day * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    let micros = seconds * 1_000_000 + i64::from(micro);
    Some(Ok(match offset {
        None => Stamp::Naive(micros),
        Some(o) if o.abs() >= 24 * 60 => {
            return fails("its time zone is a day or more away from UTC");
        }
        Some(o) => Stamp::Aware(micros - o * 60_000_000),
    }))
}

fn leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

/// The day `year-month-day` (a valid date) as Python's `date.toordinal()` counts it.
fn ordinal(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - 1;
    let before_month: u32 = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        .iter()
        .take(month as usize - 1)
        .sum();
    let leap_day = u32::from(leap_year(year) && month > 2);
    y * 365 + y / 4 - y / 100 + y / 400 + i64::from(before_month + leap_day + day)
}

/// How PyYAML's resolver (YAML 1.1) reads a plain scalar (a string where it cannot load it).
pub fn yaml11_reading(text: &str) -> Scalar {
    match resolve11(text) {
        Resolved::Read(read) => read,
        Resolved::TooLarge(_) | Resolved::Fails(_) => Scalar::Str,
    }
}

/// What PyYAML reads a plain scalar as, in words: `the integer 8 (octal)`, `the boolean true`.
pub fn describe_yaml11(read: &Scalar, text: &str) -> String {
    let t = text.trim_start_matches(['-', '+']);
    match read {
        Scalar::Bool(b) => format!("the boolean {b}"),
        Scalar::Int(i) if t.contains(':') => format!("the integer {i} (sexagesimal)"),
        Scalar::Int(i) if t.starts_with("0b") => format!("the integer {i} (binary)"),
        Scalar::Int(i) if t.starts_with("0x") => format!("the integer {i}"),
        Scalar::Int(i) if t.len() > 1 && t.starts_with('0') => format!("the integer {i} (octal)"),
        Scalar::Int(i) => format!("the integer {i}"),
        Scalar::Float(f) => format!("the number {f}"),
        Scalar::Null => "null".to_string(),
        Scalar::Timestamp(_) => "a timestamp".to_string(),
        Scalar::Str => "a string".to_string(),
    }
}

/// How a YAML 1.2 (core schema) reader would read the same plain scalar, in words, when that
/// differs from PyYAML. `None` means both agree.
pub fn yaml12_reading(text: &str) -> Option<String> {
    let y11 = yaml11_reading(text);
    let y12 = match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        _ => {
            let t = text.strip_prefix(['-', '+']).unwrap_or(text);
            if (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                || t.starts_with("0o")
                || t.starts_with("0x")
            {
                Scalar::Int(0)
            } else if text.parse::<f64>().is_ok() && !text.contains('_') && t != "inf" && t != "nan"
            {
                Scalar::Float(0.0)
            } else {
                Scalar::Str
            }
        }
    };
    let same = match (&y11, &y12) {
        (Scalar::Int(a), Scalar::Int(_)) => {
            // Leading zeros are octal in 1.1 and decimal in 1.2.
            let t = text.trim_start_matches(['-', '+']);
            let decimal = t.replace('_', "").parse::<i64>().ok();
            !(t.len() > 1 && t.starts_with('0') && !t.starts_with("0x"))
                && decimal.is_none_or(|d| d.abs() == a.abs())
        }
        (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b),
    };
    if same {
        None
    } else {
        let t = text.trim_start_matches('+');
        Some(match y12 {
            Scalar::Null => "null".to_string(),
            Scalar::Bool(b) => format!("the boolean {b}"),
            Scalar::Int(_) => match t.parse::<i64>() {
                Ok(n) => format!("the integer {n}"),
                Err(_) => "an integer".to_string(),
            },
            Scalar::Float(_) => "a number".to_string(),
            _ => "a string".to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, Error> {
        parse(s.as_bytes(), &Limits::default())
    }

    #[test]
    fn positions_are_one_based() {
        let n = p("a: 1\nb:\n  - x\n").expect("valid");
        let b = n.get("b").expect("b");
        assert_eq!(b.as_seq().expect("seq")[0].pos, Pos { line: 3, column: 5 });
    }

    #[test]
    fn pyyaml_reads_yes_as_bool() {
        assert_eq!(yaml11_reading("yes"), Scalar::Bool(true));
        assert_eq!(yaml11_reading("Off"), Scalar::Bool(false));
        assert_eq!(yaml11_reading("y"), Scalar::Str);
        assert_eq!(yaml11_reading("010"), Scalar::Int(8));
        assert_eq!(yaml11_reading("1:20"), Scalar::Int(80));
        assert_eq!(yaml11_reading("1.5"), Scalar::Float(1.5));
        assert_eq!(yaml11_reading("1e5"), Scalar::Str);
        assert_eq!(yaml11_reading("f28"), Scalar::Str);
        assert!(matches!(yaml11_reading("2017-01-18"), Scalar::Timestamp(_)));
    }

    #[test]
    fn yaml12_differences() {
        assert_eq!(yaml12_reading("yes"), Some("a string".to_string()));
        assert_eq!(yaml12_reading("true"), None);
        assert_eq!(yaml12_reading("010"), Some("the integer 10".to_string()));
        assert_eq!(yaml12_reading("10"), None);
        assert_eq!(yaml12_reading("rawhide"), None);
        assert_eq!(yaml12_reading("1:20"), Some("a string".to_string()));
    }

    #[test]
    fn quoted_yes_is_a_string() {
        let n = p("a: 'yes'\n").expect("valid");
        assert_eq!(n.get("a").and_then(Node::as_str), Some("yes"));
    }

    #[test]
    fn duplicate_key_names_both_places() {
        let e = p("a: 1\nb: 2\na: 3\n").expect_err("duplicate");
        assert_eq!(e.kind, ErrorKind::DuplicateKey);
        assert_eq!(e.pos.line, 3);
    }

    #[test]
    fn keys_on_two_lines_tags_against_brackets_and_late_byte_order_marks_are_refused() {
        for (text, named) in [
            ("a: {\"b\nc\": 1}\n", "more than one line"),
            ("a: [!!null, x]\n", "`!!null` is followed by `,`"),
            ("a: {k: !!null}\n", "`!!null` is followed by `}`"),
            ("# c\n\u{feff}x: 1\n", "BYTE ORDER MARK"),
            ("a: b\u{feff}\n", "BYTE ORDER MARK"),
        ] {
            let e = p(text).expect_err(text);
            assert!(e.message.contains(named), "{text:?}: {}", e.message);
        }
        for text in [
            "a: [!!null , x]\n",
            "a: !!map {b: 1}\n",
            "a: !!str\nb: 1\n",
            "\u{feff}a: 1\n",
        ] {
            p(text).unwrap_or_else(|e| panic!("{text:?}: {}", e.message));
        }
        let n = p("a: |\n  text").expect("valid");
        assert_eq!(
            n.get("a").and_then(Node::as_str),
            Some("text"),
            "no line break added"
        );
    }

    #[test]
    fn keys_python_takes_for_one_are_duplicates() {
        for text in [
            "1: a\n1.0: b\n",
            "1: a\n01: b\n",
            "0x10: a\n16: b\n",
            "~: a\nnull: b\n",
            ".nan: a\n.NaN: b\n",
            "2001-01-01 00:00:00Z: a\n2001-01-01 01:30:00+01:30: b\n",
            "2001-01-01 00:00:00 -1: a\n2001-01-01 01:00:00 +0: b\n",
            "2001-01-01 00:00:00: a\n2001-1-1t0:00:00.0: b\n",
            "2001-01-01 00:00:00.1234567: a\n2001-01-01 00:00:00.1234569: b\n",
            "2001-01-01 00:00:00.5: a\n2001-01-01 00:00:00.50: b\n",
            "2000-12-31 23:00:00 -01:00: a\n2001-01-01 00:00:00Z: b\n",
        ] {
            let e = p(text).expect_err(text);
            assert_eq!(e.kind, ErrorKind::DuplicateKey, "{text}");
        }
        p("1: a\n'1': b\n.nan: c\n").expect("an int and a string differ");
        // An integer equals a float only where the float is exactly that integer, as in Python.
        let e = p("9007199254740992: a\n9007199254740992.0: b\n").expect_err("2^53 twice");
        assert_eq!(e.kind, ErrorKind::DuplicateKey);
        let n = p("9007199254740993: a\n9007199254740992.0: b\n").expect("2^53 + 1 is no float");
        assert_eq!(n.as_map().map(<[_]>::len), Some(2));
        // A date is never a `datetime` to Python, nor one with a zone one without.
        for text in [
            "2001-01-01: a\n2001-01-01 00:00:00: b\n",
            "2001-01-01 00:00:00: a\n2001-01-01 00:00:00Z: b\n",
            "2001-01-01 00:00:00.1: a\n2001-01-01 00:00:00.100001: b\n",
        ] {
            let n = p(text).expect(text);
            assert_eq!(n.as_map().map(<[_]>::len), Some(2), "{text}");
        }
        let n = p("!!str <<: {a: 1}\n").expect("a tagged `<<` is a plain key");
        assert_eq!(n.as_map().map(<[_]>::len), Some(1));
        assert!(n.get("<<").is_some());
    }

    /// Too many values written out get advice about the limit; through aliases, about them.
    #[test]
    fn too_many_values_say_why() {
        let limits = Limits {
            max_nodes: 10,
            ..Limits::default()
        };
        let e = parse(b"a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n", &limits).expect_err("11 values");
        assert_eq!(e.kind, ErrorKind::TooManyNodes);
        assert!(e
            .help
            .as_deref()
            .is_some_and(|h| h.contains("taskhook.maxYamlNodes")));
        let e = parse(b"a: &a [1, 2, 3]\nb: [*a, *a]\n", &limits).expect_err("through aliases");
        assert_eq!((e.kind, e.help), (ErrorKind::TooManyNodes, None));
    }

    /// Keys are found by their value, not by comparing each with every one before it: in a
    /// mapping of thousands, and in one merged from others.
    #[test]
    fn duplicates_among_thousands_of_keys() {
        let mut text = String::from("m:\n");
        for i in 0..4000 {
            text.push_str(&format!("  k{i}: {i}\n"));
        }
        text.push_str("  k17: again\n  k3999: again\n");
        let e = p(&text).expect_err("two duplicates");
        assert_eq!(e.kind, ErrorKind::DuplicateKey);
        assert_eq!((e.pos.line, e.first.map(|f| f.line)), (4002, Some(19)));
        assert_eq!(e.more.len(), 1);
        assert_eq!(e.more[0].first.map(|f| f.line), Some(4001));

        let mut text = String::from("base: &b {");
        text.push_str(
            &(0..3000)
                .map(|i| format!("k{i}: {i}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        text.push_str("}\nm:\n  <<: *b\n  k2999: own\n  extra: 1\n");
        let n = p(&text).expect("valid");
        let m = n.get("m").and_then(Node::as_map).expect("m");
        assert_eq!(m.len(), 3001);
        let value = |k: &str| {
            n.get("m")
                .and_then(|m| m.get(k))
                .and_then(Node::scalar_text)
        };
        assert_eq!((value("k0"), value("k2999")), (Some("0"), Some("own")));
    }

    #[test]
    fn merge_keys_apply() {
        let n = p("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n").expect("valid");
        let m = n.get("m").expect("m");
        assert_eq!(m.get("y").and_then(Node::scalar_text), Some("3"));
        assert_eq!(m.get("x").and_then(Node::scalar_text), Some("1"));
    }

    /// Where YAML 1.2 readers and PyYAML part ways on anchors, flow scalars and a document that
    /// is one block scalar (found by the differential test against PyYAML): each such document
    /// is refused, with the construct named; the forms both read alike still load.
    #[test]
    fn constructs_pyyaml_reads_otherwise_are_refused() {
        let refused = [
            ("input:\n  &args:\n    - x\n", 2, "`&args:`"),
            ("a: &x.y 1\n", 1, "`&x.y`"),
            ("a: &x[1, 2]\n", 1, "`&x`"),
            ("a: &x 1\nb: *x{\n", 2, "`*x`"),
            ("a: [x? y, z]\n", 1, "`x? y`"),
            ("a: [?x]\n", 1, "`?x`"),
            ("a: [b, :c]\n", 1, "`:c`"),
            ("a: {k: v?}\n", 1, "`v?`"),
            ("a: [x?y]\n", 1, "`x?y`"),
            ("a: [b, : c]\n", 1, "key is missing"),
            ("a: {k: 1, : c}\n", 1, "key is missing"),
            ("a: [b,:]\n", 1, "key is missing"),
            ("a: &x 1\nb: &x 2\nc: *x\n", 2, "defined twice"),
            ("a: [&x b, &x c]\n", 1, "defined twice"),
            ("|\nname: x\n", 2, "block scalar"),
            (">-\n\nname: x\n", 3, "block scalar"),
        ];
        for (text, line, named) in refused {
            let e = p(text).expect_err(text);
            assert_eq!(e.kind, ErrorKind::Syntax, "{text}: {}", e.message);
            assert_eq!(e.pos.line, line, "{text}: {}", e.message);
            assert!(e.message.contains(named), "{text}: {}", e.message);
        }
        let read_alike = [
            "a: &base-1_x {k: 1}\nb: *base-1_x\n",
            "a: &x [1, 2]\nb: [*x, *x]\n",
            "a: {k: &v 1, j: *v}\n",
            "a: x? y\nb: :c\nc: ?d\n",
            "a: [b:c, 'd?', \"?e\"]\n",
            "|\n  text\n",
            "|\n",
            "a: |\n  text\n",
            "a: [b: c, d]\n",
            "a: [b:]\n",
            "a:\nb: {k: , j: 1}\n",
        ];
        for text in read_alike {
            p(text).unwrap_or_else(|e| panic!("{text}: {}", e.message));
        }
    }

    /// Plain scalars as PyYAML's resolver patterns (bool, float, int, null, timestamp, `=`) and
    /// constructors read them: the differential test's findings, one per line.
    #[test]
    fn scalars_read_as_pyyaml_resolves_and_constructs_them() {
        let read = |t: &str| match resolve11(t) {
            Resolved::Read(r) => Ok(r),
            Resolved::TooLarge(_) => Err("too large".to_string()),
            Resolved::Fails(why) => Err(why),
        };
        assert_eq!(read(".5"), Ok(Scalar::Float(0.5)));
        // Base 60 added up from the last part, as PyYAML adds it: not the nearest float to
        // 28535.01, which a sum from the first part gives.
        assert_eq!(
            read("7:55:35.0_1"),
            Ok(Scalar::Float(f64::from_bits(4_673_572_857_779_259_966)))
        );
        assert_eq!(read(&format!("{}1.5", "1:".repeat(32))).map(|_| ()), Ok(()));
        assert_eq!(
            read(&format!("{}1.5", "1:".repeat(33))),
            Err("too large".to_string())
        );
        assert_eq!(
            read("+.5"),
            Ok(Scalar::Str),
            "no sign before a bare fraction"
        );
        assert_eq!(
            read("._5"),
            Ok(Scalar::Str),
            "a digit must follow the point"
        );
        assert_eq!(read("1:2:3.5"), Ok(Scalar::Float(3723.5)));
        assert_eq!(read("-1:30.5"), Ok(Scalar::Float(-90.5)));
        assert_eq!(
            read("1:2.5e+1"),
            Ok(Scalar::Str),
            "no exponent on sexagesimal"
        );
        assert_eq!(read("1.e+3"), Ok(Scalar::Float(1000.0)));
        assert_eq!(read("1e3"), Ok(Scalar::Str));
        assert_eq!(read("0_"), Ok(Scalar::Int(0)));
        assert_eq!(read("-0_7"), Ok(Scalar::Int(-7)));
        assert_eq!(read("1__:2"), Ok(Scalar::Int(62)));
        assert!(read("0b_").is_err());
        assert!(read("0x_").is_err());
        assert_eq!(read("9223372036854775808"), Err("too large".to_string()));
        assert_eq!(
            read("2001-1-1"),
            Ok(Scalar::Str),
            "a date alone has two-digit parts"
        );
        // Days as Python's `date(2001, 1, 1).toordinal()` counts them: 730486.
        let second = 1_000_000;
        let day = 86_400 * second;
        assert_eq!(
            read("2001-1-1 1:00:00"),
            Ok(Scalar::Timestamp(Stamp::Naive(
                730_486 * day + 3600 * second
            )))
        );
        assert_eq!(
            read("2000-02-29"),
            Ok(Scalar::Timestamp(Stamp::Date(730_179)))
        );
        assert_eq!(read("0001-01-01"), Ok(Scalar::Timestamp(Stamp::Date(1))));
        assert_eq!(
            read("9999-12-31"),
            Ok(Scalar::Timestamp(Stamp::Date(3_652_059)))
        );
        assert!(read("1900-02-29").is_err());
        assert!(read("2001-13-01").is_err());
        assert!(read("0000-01-01").is_err());
        assert!(read("2001-01-01 24:00:00").is_err());
        assert!(read("2001-01-01 10:00:60").is_err());
        assert!(read("2001-01-01 10:00:00 +24").is_err());
        assert_eq!(
            read("2001-01-01 10:00:00 -23:59"),
            Ok(Scalar::Timestamp(Stamp::Aware(
                730_486 * day + (10 * 3600 + 23 * 3600 + 59 * 60) * second
            )))
        );
        assert_eq!(
            read("2001-01-01T10:00:00.5Z"),
            Ok(Scalar::Timestamp(Stamp::Aware(
                730_486 * day + 10 * 3600 * second + second / 2
            )))
        );
        assert!(read("=").is_err());
        for refused in [
            "a: <<\n",
            "- <<\n",
            "<<\n",
            "\u{feff}\u{feff}a: b\n",
            "a: !!int yes\n",
        ] {
            assert!(p(refused).is_err(), "{refused:?}");
        }
        p("\u{feff}a: 1\nb: !!int 0x1f\n<<: {c: 1}\n")
            .expect("one mark, a tag that agrees, a merge");
    }
}
