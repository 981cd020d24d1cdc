//! Just enough XML for editing a file in place: a tree of elements that
//! remembers where each one sits in the text, and edits applied to the text
//! itself, so that everything not edited (other elements, their order,
//! formatting, comments, namespaces) stays byte for byte as it was.

use std::ops::Range;

use quick_xml::events::Event;
use quick_xml::Reader;
use synchost_plugin_sdk::Error;

/// An element and where it is in the text.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: String,
    /// From its `<` to the end of its end tag (or of its empty tag).
    pub span: Range<usize>,
    /// Between the start tag and the end tag; empty at the end of an empty tag.
    pub inner: Range<usize>,
    pub children: Vec<Element>,
    /// Its text, unescaped, when it holds text only.
    pub text: Option<String>,
    /// Written as `<Name/>`.
    pub empty: bool,
}

impl Element {
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'e>(&'e self, name: &'e str) -> impl Iterator<Item = &'e Element> + 'e {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of a child element, if it has one.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(|c| c.text.as_deref())
    }

    /// The whitespace the text puts before this element's first child (its indentation).
    pub fn child_indent<'t>(&self, text: &'t str) -> &'t str {
        match self.children.first() {
            Some(first) => {
                let before = &text[self.inner.start..first.span.start];
                &before[before.rfind('\n').unwrap_or(0)..]
            }
            None => "",
        }
    }
}

/// Reads the document's root element.
pub fn parse(text: &str) -> Result<Element, Error> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root = None;
    loop {
        let start = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| bad_xml(text, reader.error_position() as usize, &e.to_string()))?;
        let end = reader.buffer_position() as usize;
        match event {
            Event::Start(tag) => stack.push(Element {
                name: local_name(tag.name().as_ref()),
                span: start..end,
                inner: end..end,
                children: Vec::new(),
                text: None,
                empty: false,
            }),
            Event::Empty(tag) => {
                let element = Element {
                    name: local_name(tag.name().as_ref()),
                    span: start..end,
                    inner: end..end,
                    children: Vec::new(),
                    text: Some(String::new()),
                    empty: true,
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Text(raw) => {
                if let Some(open) = stack.last_mut() {
                    let value = raw.decode().map_err(|e| bad_xml(text, start, &e.to_string()))?;
                    let value = quick_xml::escape::unescape(&value).map_err(|e| bad_xml(text, start, &e.to_string()))?;
                    open.text.get_or_insert_with(String::new).push_str(&value);
                }
            }
            Event::CData(raw) => {
                if let Some(open) = stack.last_mut() {
                    open.text.get_or_insert_with(String::new).push_str(&String::from_utf8_lossy(&raw));
                }
            }
            Event::GeneralRef(raw) => {
                if let Some(open) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&raw).into_owned();
                    let reference = format!("&{name};");
                    let value = quick_xml::escape::unescape(&reference).map_err(|e| bad_xml(text, start, &e.to_string()))?;
                    open.text.get_or_insert_with(String::new).push_str(&value);
                }
            }
            Event::End(_) => {
                let mut element = stack.pop().ok_or_else(|| bad_xml(text, start, "an end tag without its start tag"))?;
                element.inner.end = start;
                element.span.end = end;
                if !element.children.is_empty() {
                    element.text = None;
                } else if element.text.is_none() {
                    element.text = Some(String::new());
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(element),
                    None => root = Some(element),
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(bad_xml(text, text.len(), &format!("<{}> is never closed", open.name)));
    }
    root.ok_or_else(|| bad_xml(text, 0, "no root element"))
}

/// An element's name without its namespace prefix.
fn local_name(name: &[u8]) -> String {
    let name = String::from_utf8_lossy(name);
    name.rsplit(':').next().unwrap_or(&name).to_owned()
}

fn bad_xml(text: &str, offset: usize, message: &str) -> Error {
    let line = text[..offset.min(text.len())].matches('\n').count() + 1;
    Error::new("bad-file", format!("the plan file is not well-formed XML at line {line}: {message}"))
        .with_hint("open and save the plan again in the application that wrote it, or restore the last good copy")
}

/// Escapes text for an element's content.
pub fn escape(value: &str) -> String {
    quick_xml::escape::escape(value).into_owned()
}

/// Replacements in the text, applied together.
#[derive(Debug, Default)]
pub struct Edits {
    edits: Vec<(Range<usize>, String)>,
}

impl Edits {
    pub fn replace(&mut self, range: Range<usize>, with: String) {
        self.edits.push((range, with));
    }

    pub fn insert(&mut self, at: usize, with: String) {
        self.edits.push((at..at, with));
    }

    pub fn extend(&mut self, other: Edits) {
        self.edits.extend(other.edits);
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The text with every edit made. Insertions at one place keep their order.
    pub fn apply(mut self, text: &str) -> String {
        self.edits.sort_by_key(|(range, _)| (range.start, range.end));
        let mut out = String::with_capacity(text.len() + 1024);
        let mut at = 0;
        for (range, with) in self.edits {
            if range.start < at {
                continue; // overlaps an earlier edit of the same element: the first wins
            }
            out.push_str(&text[at..range.start]);
            out.push_str(&with);
            at = range.end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// Sets a leaf child's text: replaces it where it is, or inserts the element
/// at its place in `order` (the schema's sequence) when the parent lacks it.
pub fn set_child(text: &str, parent: &Element, name: &str, value: &str, order: &[&str], edits: &mut Edits) {
    if let Some(child) = parent.child(name) {
        if child.empty {
            edits.replace(child.span.clone(), format!("<{name}>{}</{name}>", escape(value)));
        } else {
            edits.replace(child.inner.clone(), escape(value));
        }
        return;
    }
    let element = format!("<{name}>{}</{name}>", escape(value));
    insert_child(text, parent, name, element, order, edits);
}

/// Removes an element with the line's indentation before it.
pub fn remove(text: &str, element: &Element, edits: &mut Edits) {
    let start = text[..element.span.start].trim_end_matches(|c: char| c.is_whitespace()).len();
    edits.replace(start..element.span.end, String::new());
}

/// Inserts an element into `parent` at its place in `order`.
pub fn insert_child(text: &str, parent: &Element, name: &str, element: String, order: &[&str], edits: &mut Edits) {
    let rank = |n: &str| order.iter().position(|o| *o == n).unwrap_or(order.len());
    let wanted = rank(name);
    let indent = parent.child_indent(text).to_owned();
    match parent.children.iter().rev().find(|c| rank(&c.name) <= wanted) {
        Some(before) => edits.insert(before.span.end, format!("{indent}{element}")),
        None => match parent.children.first() {
            Some(first) => edits.insert(first.span.start, format!("{element}{indent}")),
            None => edits.insert(parent.inner.start, element),
        },
    }
}
