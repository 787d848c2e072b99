//! `merge`: the fan-in of a multi-document export. Created by `POST /exports` with several
//! files and `merge=true` together with one `export` job per file (its parts); it gets its
//! task only when every part has succeeded (see `queue::workflow`), then joins the parts' PDFs
//! in upload order into one (lopdf).
//!
//! Steps: `merge` (the joined PDF goes to storage), then the runner's `publish` and `notify`.

use crate::model::codes;
use std::collections::BTreeMap;
use std::path::Path;

use lopdf::{Document, Object, ObjectId};
use serde::{Deserialize, Serialize};

use crate::jobs::{JobContext, JobError, JobKind, JobOutput, OutputFile};
use crate::queue::ResultFile;

pub const NAME: &str = "merge";

/// Page attributes a page may inherit from the page tree above it; copied onto each page
/// before it moves into the merged tree, so it keeps its size and fonts.
const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];

pub struct Merge;

#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeArgs {
    /// Output format; `pdf`.
    pub format: String,
    /// The options its parts were exported with (shown in the job; the parts apply them).
    #[serde(
        default,
        skip_serializing_if = "crate::model::options::ExportOptions::is_empty"
    )]
    pub options: crate::model::options::ExportOptions,
}

impl JobKind for Merge {
    const NAME: &'static str = NAME;
    type Args = MergeArgs;
    const INTERNAL: bool = true;
    const STEPS: &'static [&'static str] = &["merge"];

    async fn run(&self, ctx: JobContext, _args: MergeArgs) -> Result<JobOutput, JobError> {
        let stored = ctx.step("merge", merge_parts(&ctx)).await?;
        Ok(JobOutput::stored(stored))
    }
}

async fn merge_parts(ctx: &JobContext) -> Result<ResultFile, JobError> {
    let parts = ctx.parts().await?;
    if parts.is_empty() {
        // Retention pruned them (parts finish, and expire, before their merge job).
        return Err(JobError::fatal(
            codes::MISSING_INPUT,
            "the parts of this merge job no longer exist",
        ));
    }
    ctx.progress(92, format!("merging {} parts", parts.len()))
        .await?;
    let mut files = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let path = ctx.work_dir()?.join(format!("part-{i}.pdf"));
        ctx.fetch_result(part, &path).await?;
        files.push(path);
    }
    let out = ctx.work_dir()?.join("merged.pdf");
    let target = out.clone();
    let pages = tokio::task::spawn_blocking(move || merge_files(&files, &target))
        .await
        .map_err(JobError::internal)?
        .map_err(|e| {
            JobError::fatal(codes::CONVERSION_FAILED, format!("merging the parts: {e}"))
        })?;
    ctx.progress(97, format!("merged {pages} pages; storing"))
        .await?;
    let stem = parts
        .first()
        .and_then(|p| p.input_filename())
        .and_then(|f| Path::new(f).file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "document".into());
    ctx.store(&OutputFile {
        path: out,
        filename: format!("{stem}-merged.pdf"),
        content_type: "application/pdf".into(),
    })
    .await
}

/// Joins the PDFs at `inputs`, in order, into `out`; returns the page count.
pub fn merge_files(inputs: &[impl AsRef<Path>], out: &Path) -> Result<usize, String> {
    let mut merged = Document::with_version("1.7");
    let mut kids: Vec<ObjectId> = Vec::new();
    let mut next_id = 1;
    for input in inputs {
        let mut doc = Document::load(input.as_ref()).map_err(|e| e.to_string())?;
        doc.renumber_objects_with(next_id);
        next_id = doc.max_id + 1;
        let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
        for &page in &pages {
            let inherited = inherited_attributes(&doc, page);
            if let Ok(Object::Dictionary(dict)) = doc.get_object_mut(page) {
                for (key, value) in inherited {
                    dict.set(key, value);
                }
            }
        }
        kids.extend(&pages);
        // Everything but the old document's catalog and page tree nodes comes along (pages,
        // contents, fonts, images); the page tree is rebuilt below.
        for (id, object) in doc.objects {
            let kind = object.type_name().unwrap_or(b"").to_vec();
            if kind.as_slice() != b"Catalog" && kind.as_slice() != b"Pages" {
                merged.objects.insert(id, object);
            }
        }
    }
    let pages_id = (next_id, 0);
    let catalog_id = (next_id + 1, 0);
    for &page in &kids {
        if let Ok(Object::Dictionary(dict)) = merged.get_object_mut(page) {
            dict.set("Parent", Object::Reference(pages_id));
        }
    }
    let count = kids.len();
    let mut pages = lopdf::Dictionary::new();
    pages.set("Type", Object::Name(b"Pages".to_vec()));
    pages.set("Count", Object::Integer(count as i64));
    pages.set(
        "Kids",
        Object::Array(kids.into_iter().map(Object::Reference).collect()),
    );
    merged.objects.insert(pages_id, Object::Dictionary(pages));
    let mut catalog = lopdf::Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    merged
        .objects
        .insert(catalog_id, Object::Dictionary(catalog));
    merged.trailer.set("Root", Object::Reference(catalog_id));
    merged.max_id = next_id + 1;
    merged.renumber_objects();
    merged.compress();
    merged.save(out).map_err(|e| e.to_string())?;
    Ok(count)
}

/// The inheritable attributes `page` lacks but an ancestor page-tree node has.
fn inherited_attributes(doc: &Document, page: ObjectId) -> BTreeMap<Vec<u8>, Object> {
    let mut found = BTreeMap::new();
    let Ok(dict) = doc.get_dictionary(page) else {
        return found;
    };
    let missing: Vec<&[u8]> = INHERITED.into_iter().filter(|k| !dict.has(k)).collect();
    let mut parent = dict.get(b"Parent").and_then(Object::as_reference).ok();
    // Page trees are shallow; the bound only guards against a cycle in a broken file.
    for _ in 0..32 {
        let Some(node) = parent.and_then(|id| doc.get_dictionary(id).ok()) else {
            break;
        };
        for key in &missing {
            if !found.contains_key(*key)
                && let Ok(value) = node.get(key)
            {
                found.insert(key.to_vec(), value.clone());
            }
        }
        parent = node.get(b"Parent").and_then(Object::as_reference).ok();
    }
    found
}
