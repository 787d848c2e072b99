//! External references a document may not follow, removed before LibreOffice opens it.
//!
//! The sandbox ([`super::sandbox`]) is the boundary: whatever a document asks for, the process
//! that opens it has no network, no files but its own and no secrets in its environment. This
//! is the second line, so that a document does not even *try*: every reference that leaves the
//! package is cut out of a copy of the document, and everything else is left byte for byte as
//! it was (a document with nothing to remove is converted as uploaded).
//!
//! - **OOXML**: relationships with `TargetMode="External"` (or a target with a URL scheme) —
//!   linked images, OLE objects, attached templates, sub-documents, frames, media, external
//!   workbooks — are dropped; hyperlinks stay (they become links in the PDF and are never
//!   fetched). `href`/`src`/`url` attributes that leave the package (VML `o:href`,
//!   `v:imagedata src`, connection URLs) are removed, and the field instructions that pull in
//!   other files (`INCLUDEPICTURE`, `INCLUDETEXT`, `IMPORT`, `LINK`, `DDE`, …) are blanked so
//!   the field shows its last result.
//! - **ODF**: `xlink:href` (and `src`, `action`) values that leave the package — absolute,
//!   `file:`, `http(s):`, `vnd.sun.star.*`, `../` — are removed from images, backgrounds,
//!   bullets, fills, fonts, OLE links, frames, plugins, XForms instances and submissions;
//!   link-only elements (linked sections, linked sheets, DDE sources, Calc data mappings and
//!   streams, event listeners) are dropped with their content, and a document's own setting to update links on load is dropped so the
//!   hardened profile's applies.
//! - **SVG** anywhere in a package: `href`s other than `#fragments` and `data:` are removed.
//! - **Any XML part**: a `<!DOCTYPE …>` (the door to external entities) and `xml-stylesheet`
//!   instructions are dropped. Symbolic links stored in the zip are dropped.
//! - **RTF**: the same field instructions are blanked, linked objects (`\objautlink`,
//!   `\objlink`) become embedded ones (their cached picture shows), `\*\template` is ignored.
//!
//! Legacy binary formats (`.doc`, `.xls`, `.ppt`) are not rewritten: for them the sandbox alone
//! holds.
//!
//! Each XML part is read twice, streaming, with quick-xml: once to find what to change, and only
//! if something was found, once more to write the changed copy. A part quick-xml cannot parse
//! is left as it is (logged): it is either broken for LibreOffice too, or the sandbox holds.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Seek, Write};
use std::path::Path;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{QName, ResolveResult};
use quick_xml::{NsReader, Writer, XmlVersion};

use super::{ConvertError, DocFormat};

/// What was cut out of a document, for logs and progress messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// One line per reference: `part: what`.
    pub removed: Vec<String>,
}

/// Writes a copy of `input` without its external references to `output`. `Ok(None)` (and no
/// output) when there was nothing to remove.
pub fn neutralize(
    input: &Path,
    format: DocFormat,
    output: &Path,
) -> Result<Option<Report>, ConvertError> {
    let flavour = if format.is_ooxml() {
        Flavour::Ooxml
    } else if format.is_odf() {
        Flavour::Odf
    } else if format == DocFormat::Rtf {
        return neutralize_rtf(input, output);
    } else {
        return Ok(None);
    };
    let file = std::fs::File::open(input).map_err(ConvertError::io)?;
    let mut archive = zip::ZipArchive::new(file)
        .map_err(|e| ConvertError::Rejected(format!("the package does not open: {e}")))?;
    let mut plans = Vec::with_capacity(archive.len());
    let mut report = Report::default();
    for i in 0..archive.len() {
        let plan = plan_entry(&mut archive, i, flavour, &mut report)?;
        plans.push(plan);
    }
    if report.removed.is_empty() {
        return Ok(None);
    }
    write_package(&mut archive, &plans, output)?;
    Ok(Some(report))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Ooxml,
    Odf,
}

/// What happens to one zip entry.
enum EntryPlan {
    Copy,
    Drop,
    /// Rewrite the XML part, applying these actions (by event number).
    Rewrite(Vec<(usize, Action)>),
}

fn plan_entry<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
    flavour: Flavour,
    report: &mut Report,
) -> Result<EntryPlan, ConvertError> {
    let mut entry = archive
        .by_index(index)
        .map_err(|e| ConvertError::Rejected(format!("the package does not open: {e}")))?;
    let name = entry.name().to_string();
    if entry.is_symlink() {
        report.removed.push(format!("{name}: a symbolic link"));
        return Ok(EntryPlan::Drop);
    }
    if entry.is_dir() {
        return Ok(EntryPlan::Copy);
    }
    let mut reader = BufReader::new(&mut entry);
    if !looks_like_xml(&mut reader).map_err(ConvertError::io)? {
        return Ok(EntryPlan::Copy);
    }
    let rules = Rules::for_part(&name, flavour);
    match find_actions(reader, &rules) {
        Ok(found) if found.is_empty() => Ok(EntryPlan::Copy),
        Ok(found) => {
            report
                .removed
                .extend(found.iter().map(|(_, a)| format!("{name}: {}", a.what())));
            Ok(EntryPlan::Rewrite(found))
        }
        Err(e) => {
            tracing::debug!(part = %name, error = %e, "part is not well-formed XML; left as it is");
            Ok(EntryPlan::Copy)
        }
    }
}

/// Whether the entry's first significant byte opens markup (parts are found by content, not
/// by name: an SVG can hide behind `image1.png`).
fn looks_like_xml(reader: &mut impl BufRead) -> std::io::Result<bool> {
    let head = reader.fill_buf()?;
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    Ok(head
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<'))
}

fn write_package<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    plans: &[EntryPlan],
    output: &Path,
) -> Result<(), ConvertError> {
    let out = std::fs::File::create(output).map_err(ConvertError::io)?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::new(out));
    for (i, plan) in plans.iter().enumerate() {
        match plan {
            EntryPlan::Drop => {}
            EntryPlan::Copy => {
                let entry = archive.by_index_raw(i).map_err(ConvertError::io)?;
                writer.raw_copy_file(entry).map_err(ConvertError::io)?;
            }
            EntryPlan::Rewrite(actions) => {
                let entry = archive.by_index(i).map_err(ConvertError::io)?;
                let name = entry.name().to_string();
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Deflated);
                writer
                    .start_file(name.as_str(), options)
                    .map_err(ConvertError::io)?;
                rewrite(BufReader::new(entry), &mut writer, actions).map_err(ConvertError::io)?;
            }
        }
    }
    writer
        .finish()
        .map_err(ConvertError::io)?
        .flush()
        .map_err(ConvertError::io)
}

/// A change to one event of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// Drop the element with everything inside it.
    DropElement(String),
    /// Write the element without these attributes (by qualified name).
    DropAttributes(Vec<String>, String),
    /// Replace the text with spaces (a field instruction).
    BlankText(String),
    /// Drop the event itself (a DOCTYPE, a stylesheet instruction).
    DropEvent(String),
}

impl Action {
    fn what(&self) -> &str {
        match self {
            Action::DropElement(w)
            | Action::DropAttributes(_, w)
            | Action::BlankText(w)
            | Action::DropEvent(w) => w,
        }
    }
}

const XLINK: &str = "http://www.w3.org/1999/xlink";

/// Field instructions that pull in something from outside the document.
const EXTERNAL_FIELDS: [&str; 8] = [
    "INCLUDEPICTURE",
    "INCLUDETEXT",
    "INCLUDE",
    "IMPORT",
    "LINK",
    "DDEAUTO",
    "DDE",
    "DATABASE",
];

/// ODF elements whose only job is to pull content in from elsewhere (or, for event
/// listeners, to run something): dropped with everything inside them.
const ODF_LINK_ELEMENTS: [&str; 9] = [
    "section-source",
    "table-source",
    "cell-range-source",
    "dde-source",
    "dde-connection-decl",
    "dde-link",
    // calcext: fill a range from a file or URL at load (CVE-2026-63270)
    "data-mapping",
    "data-stream-source",
    "event-listeners",
];

/// Which rules apply to a part.
struct Rules {
    relationships: bool,
    flavour: Flavour,
}

impl Rules {
    fn for_part(name: &str, flavour: Flavour) -> Self {
        Self {
            relationships: name.ends_with(".rels"),
            flavour,
        }
    }
}

/// The state of one pass over a part.
#[derive(Default)]
struct Scan {
    /// Inside an `<svg>` root (its own rules apply).
    svg: bool,
    root_seen: bool,
    /// Inside a `w:instrText` whose field pulls in another file.
    in_instr_text: bool,
    /// The current complex field's instruction so far, and whether it was found external.
    field: Option<(String, bool)>,
    /// Inside a document's own `LinkUpdateMode` setting, opened by event number….
    link_update_mode: Option<usize>,
}

/// `LinkUpdateMode` = AUTO (`css::document::LinkUpdateModes`): update every link on load.
const LINK_UPDATE_ALWAYS: &str = "2";

/// Pass one: which events of the part to change.
fn find_actions(reader: impl BufRead, rules: &Rules) -> quick_xml::Result<Vec<(usize, Action)>> {
    let mut reader = NsReader::from_reader(reader);
    let mut buf = Vec::new();
    let mut scan = Scan::default();
    let mut actions = Vec::new();
    let mut n = 0usize;
    let mut skip_depth = 0usize;
    loop {
        let event = reader.read_event_into(&mut buf)?;
        match &event {
            Event::Eof => break,
            Event::Start(_) if skip_depth > 0 => skip_depth += 1,
            Event::End(_) if skip_depth > 0 => skip_depth -= 1,
            _ if skip_depth > 0 => {}
            Event::Start(e) if is_link_update_mode(e, rules) => {
                // Decided by its value, in the text that follows.
                scan.link_update_mode = Some(n);
            }
            Event::Start(e) | Event::Empty(e) => {
                let is_start = matches!(event, Event::Start(_));
                if let Some(action) = element_action(&reader, e, rules, &mut scan) {
                    if is_start && matches!(action, Action::DropElement(_)) {
                        skip_depth = 1;
                    }
                    actions.push((n, action));
                }
            }
            Event::End(e) => {
                scan.link_update_mode = None;
                if e.local_name().as_ref() == "instrText" {
                    scan.in_instr_text = false;
                }
            }
            Event::Text(t) if scan.link_update_mode.is_some() => {
                let start = scan.link_update_mode.take().expect("checked above");
                if t.xml10_content().trim() == LINK_UPDATE_ALWAYS {
                    let what = "the document's own setting to update links on load";
                    actions.push((start, Action::DropElement(what.into())));
                }
            }
            Event::Text(t) if scan.in_instr_text => {
                let text = t.xml10_content();
                if field_text(&mut scan, &text) {
                    actions.push((n, Action::BlankText("an external field instruction".into())));
                }
            }
            Event::DocType(_) => {
                actions.push((n, Action::DropEvent("a DOCTYPE declaration".into())));
            }
            Event::PI(pi) if pi.target() == "xml-stylesheet" => {
                actions.push((n, Action::DropEvent("an xml-stylesheet instruction".into())));
            }
            _ => {}
        }
        n += 1;
        buf.clear();
    }
    actions.sort_by_key(|(i, _)| *i);
    Ok(actions)
}

/// An ODF `<config:config-item config:name="LinkUpdateMode">`.
fn is_link_update_mode(e: &BytesStart, rules: &Rules) -> bool {
    rules.flavour == Flavour::Odf
        && e.local_name().as_ref() == "config-item"
        && attr(e, "name").as_deref() == Some("LinkUpdateMode")
}

/// Feeds a piece of a complex field's instruction; `true` when this piece must be blanked.
fn field_text(scan: &mut Scan, text: &str) -> bool {
    let Some((instruction, external)) = scan.field.as_mut() else {
        return is_external_field(text);
    };
    instruction.push_str(text);
    if !*external {
        *external = is_external_field(instruction);
    }
    *external
}

/// Whether a field instruction (`INCLUDEPICTURE "…"`, with or without switches) pulls in
/// another file.
fn is_external_field(instruction: &str) -> bool {
    let keyword: String = instruction
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    EXTERNAL_FIELDS.contains(&keyword.as_str())
}

/// What to do with one element, if anything.
fn element_action<R>(
    reader: &NsReader<R>,
    e: &BytesStart,
    rules: &Rules,
    scan: &mut Scan,
) -> Option<Action> {
    let local = e.local_name();
    let local = local.as_ref();
    if !scan.root_seen {
        scan.root_seen = true;
        scan.svg = local == "svg";
    }
    if rules.relationships && local == "Relationship" {
        return relationship_action(e);
    }
    if rules.flavour == Flavour::Ooxml && !scan.svg {
        match local {
            "fldChar" => {
                match attr(e, "fldCharType").as_deref() {
                    Some("begin") => scan.field = Some((String::new(), false)),
                    Some("separate") | Some("end") => scan.field = None,
                    _ => {}
                }
                return None;
            }
            "instrText" => {
                scan.in_instr_text = true;
                return None;
            }
            "fldSimple" if attr(e, "instr").is_some_and(|i| is_external_field(&i)) => {
                let key = qualified_attr(e, "instr")?;
                return Some(Action::DropAttributes(
                    vec![key],
                    "an external field instruction".into(),
                ));
            }
            _ => {}
        }
    }
    if rules.flavour == Flavour::Odf && !scan.svg && ODF_LINK_ELEMENTS.contains(&local) {
        return Some(Action::DropElement(format!("a linked {local}")));
    }
    let leaving: Vec<String> = e
        .attributes()
        .flatten()
        .filter(|a| reference_attribute(reader, a.key, rules, scan))
        .filter(|a| {
            let value = a
                .normalized_value(XmlVersion::Implicit1_0)
                .unwrap_or_default();
            if scan.svg {
                leaves_svg(&value)
            } else {
                leaves_package(&value)
            }
        })
        .map(|a| a.key.0.to_string())
        .collect();
    // Hyperlinks stay: they become links in the PDF and nothing fetches them.
    if leaving.is_empty() || local == "a" {
        return None;
    }
    let name = String::from_utf8_lossy(e.name().as_ref().as_bytes()).into_owned();
    Some(Action::DropAttributes(
        leaving,
        format!("an external reference on <{name}>"),
    ))
}

/// Whether an attribute names something to load (`xlink:href`, `href`, `src`, …).
fn reference_attribute<R>(reader: &NsReader<R>, key: QName, rules: &Rules, scan: &Scan) -> bool {
    let (ns, local) = reader.resolver().resolve_attribute(key);
    let local = local.as_ref();
    if matches!(ns, ResolveResult::Bound(n) if n.as_ref() == XLINK) && local == "href" {
        return true;
    }
    match (rules.flavour, scan.svg) {
        (_, true) => local == "href",
        (Flavour::Odf, false) => matches!(local, "href" | "src" | "action"),
        (Flavour::Ooxml, false) => matches!(local, "href" | "src" | "url"),
    }
}

/// An OOXML relationship that reaches outside the package (hyperlinks excepted).
fn relationship_action(e: &BytesStart) -> Option<Action> {
    let external = attr(e, "TargetMode").is_some_and(|m| m.eq_ignore_ascii_case("External"))
        || attr(e, "Target").is_some_and(|t| has_scheme(&t));
    let kind = attr(e, "Type").unwrap_or_default();
    if !external || kind.ends_with("/hyperlink") {
        return None;
    }
    let kind = kind.rsplit('/').next().unwrap_or("unknown").to_string();
    Some(Action::DropElement(format!(
        "an external {kind} relationship"
    )))
}

/// An attribute's unescaped value, by local name.
fn attr(e: &BytesStart, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .map(|a| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .unwrap_or_default()
                .into_owned()
        })
}

fn qualified_attr(e: &BytesStart, local: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == local)
        .map(|a| a.key.0.to_string())
}

/// `scheme:` at the start of a reference (RFC 3986), e.g. `file:`, `http:`, `vnd.sun.star.expand:`
/// or a Windows drive letter.
fn has_scheme(value: &str) -> bool {
    let value = value.trim_start();
    let Some(colon) = value.find(':') else {
        return false;
    };
    let scheme = &value[..colon];
    scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Whether a reference in a package part points outside the package.
fn leaves_package(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() || value.starts_with('#') {
        return false;
    }
    has_scheme(value)
        || value.starts_with('/')
        || value.starts_with('\\')
        || value
            .split(['/', '\\'])
            .any(|segment| segment == ".." || segment.starts_with("%2e%2e"))
}

/// Whether an `href` inside an SVG image points outside it (fragments and `data:` stay).
fn leaves_svg(value: &str) -> bool {
    let value = value.trim();
    !(value.is_empty() || value.starts_with('#') || value.starts_with("data:"))
}

/// Pass two: copies the part event by event, applying `actions`.
fn rewrite(
    reader: impl BufRead,
    out: &mut impl Write,
    actions: &[(usize, Action)],
) -> std::io::Result<()> {
    let mut reader = NsReader::from_reader(reader);
    let mut writer = Writer::new(out);
    let mut buf = Vec::new();
    let mut next = actions.iter().peekable();
    let mut n = 0usize;
    let mut skip_depth = 0usize;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(std::io::Error::other)?;
        if matches!(event, Event::Eof) {
            break;
        }
        let action = next.next_if(|(i, _)| *i == n).map(|(_, a)| a);
        n += 1;
        if skip_depth > 0 {
            match event {
                Event::Start(_) => skip_depth += 1,
                Event::End(_) => skip_depth -= 1,
                _ => {}
            }
            buf.clear();
            continue;
        }
        match (action, event) {
            (None, event) => writer.write_event(event)?,
            (Some(Action::DropEvent(_)), _) => {}
            (Some(Action::DropElement(_)), Event::Start(_)) => skip_depth = 1,
            (Some(Action::DropElement(_)), _) => {}
            (Some(Action::DropAttributes(keys, _)), Event::Start(e)) => {
                writer.write_event(Event::Start(without(&e, keys)))?
            }
            (Some(Action::DropAttributes(keys, _)), Event::Empty(e)) => {
                writer.write_event(Event::Empty(without(&e, keys)))?
            }
            (Some(Action::BlankText(_)), Event::Text(t)) => {
                let blank = " ".repeat(t.len());
                writer.write_event(Event::Text(quick_xml::events::BytesText::new(&blank)))?
            }
            (Some(_), event) => writer.write_event(event)?,
        }
        buf.clear();
    }
    Ok(())
}

/// `e` without the attributes named in `keys` (the others keep their raw, escaped values).
fn without(e: &BytesStart, keys: &[String]) -> BytesStart<'static> {
    let name = String::from_utf8_lossy(e.name().as_ref().as_bytes()).into_owned();
    let mut copy = BytesStart::new(name);
    for a in e.attributes().flatten() {
        if !keys.iter().any(|k| k == a.key.0) {
            copy.push_attribute(a);
        }
    }
    copy.into_owned()
}

/// RTF: field instructions that pull in files, linked objects, attached templates.
fn neutralize_rtf(input: &Path, output: &Path) -> Result<Option<Report>, ConvertError> {
    let mut data = std::fs::read(input).map_err(ConvertError::io)?;
    let mut report = Report::default();
    blank_rtf_fields(&mut data, &mut report);
    for (from, to, what) in [
        (
            &b"\\objautlink"[..],
            &b"\\objemb    "[..],
            "a linked object",
        ),
        (b"\\objlink", b"\\objemb ", "a linked object"),
        (b"\\*\\template", b"\\*\\xtemplat", "an attached template"),
    ] {
        replace_control_word(&mut data, from, to, what, &mut report);
    }
    if report.removed.is_empty() {
        return Ok(None);
    }
    std::fs::write(output, &data).map_err(ConvertError::io)?;
    Ok(Some(report))
}

/// Replaces the control word `from` (not a longer word that starts with it) with `to`, which
/// has the same length, so nothing else in the file moves.
fn replace_control_word(data: &mut [u8], from: &[u8], to: &[u8], what: &str, report: &mut Report) {
    debug_assert_eq!(from.len(), to.len());
    let mut i = 0;
    while let Some(pos) = find(&data[i..], from) {
        let at = i + pos;
        let end = at + from.len();
        let boundary = data.get(end).is_none_or(|b| !b.is_ascii_alphabetic());
        if boundary {
            data[at..end].copy_from_slice(to);
            report.removed.push(format!("rtf: {what}"));
        }
        i = end;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Blanks (with spaces) the instruction of every `{\*\fldinst …}` group whose plain text names
/// an external field; the field then shows its last result (`\fldrslt`).
fn blank_rtf_fields(data: &mut [u8], report: &mut Report) {
    let mut i = 0;
    while let Some(pos) = find(&data[i..], b"\\fldinst") {
        let start = i + pos + b"\\fldinst".len();
        let end = group_end(data, start);
        if is_external_field(&rtf_plain_text(&data[start..end])) {
            data[start..end].iter_mut().for_each(|b| *b = b' ');
            report
                .removed
                .push("rtf: an external field instruction".into());
        }
        i = end.max(start);
    }
}

/// Where the group that contains `from` closes (the offset of its `}`), or the end of the data.
fn group_end(data: &[u8], from: usize) -> usize {
    let mut depth = 0usize;
    let mut i = from;
    while i < data.len() {
        match data[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' if depth == 0 => return i,
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    data.len()
}

/// The text of an RTF fragment without control words, groups and escapes.
fn rtf_plain_text(fragment: &[u8]) -> String {
    let mut text = String::new();
    let mut i = 0;
    while i < fragment.len() {
        match fragment[i] {
            b'\\' => {
                i += 1;
                if fragment.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
                    while fragment.get(i).is_some_and(|b| b.is_ascii_alphabetic()) {
                        i += 1;
                    }
                    while fragment
                        .get(i)
                        .is_some_and(|b| b.is_ascii_digit() || *b == b'-')
                    {
                        i += 1;
                    }
                    if fragment.get(i) == Some(&b' ') {
                        i += 1;
                    }
                    continue;
                }
                if let Some(&b) = fragment.get(i) {
                    text.push(b as char);
                }
            }
            b'{' | b'}' | b'\r' | b'\n' => {}
            b => text.push(b as char),
        }
        i += 1;
    }
    text
}

/// Names of the entries of a package that occur more than once (a legitimate writer never
/// makes them; which copy a reader takes differs between readers). Read from the central
/// directory itself: the zip crate keeps one entry per name and cannot tell.
pub fn duplicate_entries<R: Read + Seek>(file: &mut R) -> std::io::Result<Vec<String>> {
    let Some((offset, size)) = central_directory(file)? else {
        return Ok(Vec::new());
    };
    let mut directory = vec![0u8; size];
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.read_exact(&mut directory)?;
    let (mut seen, mut twice) = (BTreeSet::new(), BTreeSet::new());
    let mut at = 0;
    while directory.len() >= at + 46 && directory[at..at + 4] == *b"PK\x01\x02" {
        let le16 =
            |i: usize| u16::from_le_bytes([directory[at + i], directory[at + i + 1]]) as usize;
        let (name_len, extra_len, comment_len) = (le16(28), le16(30), le16(32));
        let Some(name) = directory.get(at + 46..at + 46 + name_len) else {
            break;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        if !seen.insert(name.clone()) {
            twice.insert(name);
        }
        at += 46 + name_len + extra_len + comment_len;
    }
    Ok(twice.into_iter().collect())
}

/// Offset and size of the central directory, from the end-of-central-directory record
/// (`None` when there is none, or it is a ZIP64 one: such packages are left to the zip crate).
fn central_directory<R: Read + Seek>(file: &mut R) -> std::io::Result<Option<(u64, usize)>> {
    let len = file.seek(std::io::SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(std::io::SeekFrom::Start(len - tail_len))?;
    file.read_exact(&mut tail)?;
    let Some(eocd) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == *b"PK\x05\x06")
    else {
        return Ok(None);
    };
    let le32 = |i: usize| u32::from_le_bytes(tail[eocd + i..eocd + i + 4].try_into().unwrap());
    let (size, offset) = (le32(12), le32(16));
    if offset == u32::MAX || u64::from(offset) + u64::from(size) > len {
        return Ok(None);
    }
    Ok(Some((u64::from(offset), size as usize)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_that_leave_the_package_are_told_apart() {
        for leaves in [
            "file:///etc/passwd",
            "http://169.254.169.254/latest",
            "vnd.sun.star.expand:${DATABASE_URL}",
            "../../secret.png",
            "/etc/passwd",
            "C:\\Windows\\win.ini",
            "Pictures/..\\..\\x.png",
        ] {
            assert!(leaves_package(leaves), "{leaves}");
        }
        for stays in [
            "Pictures/1000.png",
            "./Object 1",
            "#Slide 2",
            "media/image1.png",
            "",
        ] {
            assert!(!leaves_package(stays), "{stays}");
        }
    }

    #[test]
    fn external_fields_are_recognised_by_their_keyword() {
        assert!(is_external_field(
            " INCLUDEPICTURE \"file:///etc/passwd\" \\d "
        ));
        assert!(is_external_field("includetext x"));
        assert!(!is_external_field(" HYPERLINK \"http://example.com\" "));
        assert!(!is_external_field(" PAGE "));
    }

    #[test]
    fn rtf_fields_are_blanked_even_when_split_by_control_words() {
        let mut rtf = br#"{\rtf1{\field{\*\fldinst {\b INCLUDE}PICTURE "file:///etc/passwd"}{\fldrslt old}}{\field{\*\fldinst HYPERLINK "http://x"}{\fldrslt link}}}"#.to_vec();
        let mut report = Report::default();
        blank_rtf_fields(&mut rtf, &mut report);
        let text = String::from_utf8(rtf).unwrap();
        assert!(!text.contains("passwd"), "{text}");
        assert!(text.contains("HYPERLINK"), "{text}");
        assert!(text.contains("{\\fldrslt old}"), "{text}");
        assert_eq!(report.removed.len(), 1);
    }

    fn zip(entries: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn part(package: &[u8], name: &str) -> String {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(package)).unwrap();
        let mut text = String::new();
        archive
            .by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn neutralized(package: Vec<u8>, format: DocFormat) -> Option<(Vec<u8>, Report)> {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in"), dir.path().join("out"));
        std::fs::write(&input, package).unwrap();
        let report = neutralize(&input, format, &output).unwrap()?;
        Some((std::fs::read(output).unwrap(), report))
    }

    #[test]
    fn external_relationships_go_and_hyperlinks_stay() {
        let rels = r#"<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/hyperlink" Target="https://example.com/" TargetMode="External"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="file:///etc/passwd" TargetMode="External"/><Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" Target="media/image1.png"/></Relationships>"#;
        let doc = r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"/>"#;
        let package = zip(&[
            ("word/document.xml", doc),
            ("word/_rels/document.xml.rels", rels),
        ]);
        let (out, report) = neutralized(package, DocFormat::Docx).expect("something to remove");
        let rels = part(&out, "word/_rels/document.xml.rels");
        assert!(rels.contains("https://example.com/"), "{rels}");
        assert!(rels.contains("media/image1.png"), "{rels}");
        assert!(!rels.contains("passwd"), "{rels}");
        assert_eq!(
            part(&out, "word/document.xml"),
            doc,
            "untouched parts stay byte for byte"
        );
        assert_eq!(report.removed.len(), 1, "{report:?}");
    }

    #[test]
    fn odf_references_leaving_the_package_go_and_the_rest_stays() {
        let content = r#"<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" xmlns:x="http://www.w3.org/1999/xlink"><office:body><office:text><text:p><text:a x:href="http://example.com/">link</text:a><draw:image x:href="vnd.sun.star.expand:${HOME}" x:type="simple"/><draw:image x:href="Pictures/1.png"/></text:p><text:section><text:section-source x:href="file:///etc/passwd"/><text:p>kept</text:p></text:section></office:text></office:body></office:document-content>"#;
        let package = zip(&[
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", content),
        ]);
        let (out, report) = neutralized(package, DocFormat::Odt).expect("something to remove");
        let content = part(&out, "content.xml");
        assert!(
            content.contains(r#"x:href="http://example.com/""#),
            "{content}"
        );
        assert!(content.contains(r#"x:href="Pictures/1.png""#), "{content}");
        assert!(
            content.contains(r#"<draw:image x:type="simple"/>"#),
            "{content}"
        );
        assert!(
            !content.contains("passwd") && !content.contains("expand"),
            "{content}"
        );
        assert!(content.contains("<text:p>kept</text:p>"), "{content}");
        assert_eq!(report.removed.len(), 2, "{report:?}");
    }

    #[test]
    fn an_svg_is_found_by_its_content_and_a_doctype_goes() {
        let svg = r##"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/hosts"/><use href="#a"/></svg>"##;
        let package = zip(&[
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", "<office:document-content/>"),
            ("Pictures/innocent.png", svg),
        ]);
        let (out, _) = neutralized(package, DocFormat::Odt).expect("something to remove");
        let svg = part(&out, "Pictures/innocent.png");
        assert!(!svg.contains("DOCTYPE") && !svg.contains("hosts"), "{svg}");
        assert!(svg.contains(r##"href="#a""##), "{svg}");
    }

    #[test]
    fn a_document_asking_to_update_its_links_on_load_loses_that_setting() {
        let settings = |mode: &str| {
            format!(
                r#"<office:document-settings xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:config="urn:oasis:names:tc:opendocument:xmlns:config:1.0"><config:config-item config:name="LinkUpdateMode" config:type="short">{mode}</config:config-item><config:config-item config:name="Other" config:type="short">2</config:config-item></office:document-settings>"#
            )
        };
        let with = |mode: &str| {
            zip(&[
                ("mimetype", "application/vnd.oasis.opendocument.text"),
                ("settings.xml", &settings(mode)),
            ])
        };
        assert!(
            neutralized(with("1"), DocFormat::Odt).is_none(),
            "on request stays"
        );
        let (out, _) = neutralized(with("2"), DocFormat::Odt).expect("always goes");
        let text = part(&out, "settings.xml");
        assert!(
            !text.contains("LinkUpdateMode") && text.contains("Other"),
            "{text}"
        );
    }

    #[test]
    fn a_clean_package_is_not_rewritten() {
        let package = zip(&[
            ("mimetype", "application/vnd.oasis.opendocument.text"),
            ("content.xml", "<office:document-content/>"),
        ]);
        assert!(neutralized(package, DocFormat::Odt).is_none());
    }

    #[test]
    fn duplicate_entries_are_found_in_the_central_directory() {
        let package = zip(&[("a.xml", "<a/>"), ("b.xml", "<b/>")]);
        let mut twice = package.clone();
        for i in 0..package.len() - 5 {
            if &package[i..i + 5] == b"b.xml" {
                twice[i..i + 5].copy_from_slice(b"a.xml");
            }
        }
        let mut cursor = std::io::Cursor::new(twice);
        assert_eq!(duplicate_entries(&mut cursor).unwrap(), vec!["a.xml"]);
        let mut cursor = std::io::Cursor::new(package);
        assert!(duplicate_entries(&mut cursor).unwrap().is_empty());
    }
}
