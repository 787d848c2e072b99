//! Export options, end to end: each option changes the PDF a real LibreOffice makes, in a way
//! an independent reader (poppler, pypdf, lopdf) sees; bad options and impossible combinations
//! are refused at submit, naming the option.

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::fixtures;
use crate::helpers::*;
use crate::pdf;

/// Exports `bytes` (named `name`) with `options` and returns the job and its PDF.
async fn export(app: &TestApp, name: &str, bytes: Vec<u8>, options: Value) -> (Value, Vec<u8>) {
    let form = Form::new()
        .part("file", Part::bytes(bytes).file_name(name.to_string()))
        .text("options", options.to_string())
        .text("cache", "bypass");
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 202, "{options}");
    let job: Value = resp.json().await.unwrap();
    let done = app.wait_final(&id_of(&job)).await;
    assert_eq!(done["status"], "succeeded", "{options}: {done}");
    let pdf = app
        .download(&id_of(&job))
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec();
    (done, pdf)
}

fn sample_bytes(name: &str) -> Vec<u8> {
    std::fs::read(sample(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_that_pick_pages_change_the_page_count() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let report = || sample_bytes("report3.docx");
    let (_, all) = export(&app, "report3.docx", report(), json!({})).await;
    let (job, some) = export(&app, "report3.docx", report(), json!({"page_range": "2-3"})).await;
    assert_eq!((pdf_pages(&all), pdf_pages(&some)), (4, 2));
    assert_eq!(
        job["options"],
        json!({"page_range": "2-3"}),
        "echoed in the job"
    );

    let deck = fixtures::deck_with_a_hidden_slide;
    let (_, shown) = export(&app, "deck.pptx", deck(), json!({})).await;
    let (_, hidden) = export(
        &app,
        "deck.pptx",
        deck(),
        json!({"export_hidden_slides": true}),
    )
    .await;
    assert_eq!((pdf_pages(&shown), pdf_pages(&hidden)), (4, 5));
    let (_, notes) = export(
        &app,
        "deck.pptx",
        deck(),
        json!({"export_notes_pages": true}),
    )
    .await;
    assert!(pdf_pages(&notes) > 4, "notes pages follow the slides");

    let sheets = || sample_bytes("sales.xlsx");
    let (_, one_each) = export(&app, "sales.xlsx", sheets(), json!({})).await;
    let (_, printed) = export(
        &app,
        "sales.xlsx",
        sheets(),
        json!({"single_page_sheets": false}),
    )
    .await;
    assert_ne!(pdf_pages(&one_each), pdf_pages(&printed));

    let blank = fixtures::odt_with_an_inserted_blank_page;
    let (_, kept) = export(
        &app,
        "blank.odt",
        blank(),
        json!({"skip_empty_pages": false}),
    )
    .await;
    let (_, skipped) = export(&app, "blank.odt", blank(), json!({})).await;
    assert_eq!((pdf_pages(&kept), pdf_pages(&skipped)), (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_a_and_pdf_ua_make_conforming_files() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let report = || sample_bytes("report3.docx");
    let (_, plain) = export(&app, "report3.docx", report(), json!({})).await;
    assert_eq!(pdf::pdf_a_claim(&plain), None);
    assert!(!pdf::catalog_has(&plain, "StructTreeRoot"));
    for (level, part) in [("1b", "1"), ("2b", "2"), ("3b", "3")] {
        let (_, pdf_a) = export(&app, "report3.docx", report(), json!({"pdf_a": level})).await;
        assert_eq!(
            pdf::pdf_a_claim(&pdf_a),
            Some((part.to_string(), "B".to_string())),
            "PDF/A-{level}"
        );
        assert!(pdf::catalog_has(&pdf_a, "OutputIntents"), "PDF/A-{level}");
        assert_eq!(pdf::info(&pdf_a, "Encrypted"), "no");
        let fonts = pdf::fonts(&pdf_a);
        assert!(
            !fonts.is_empty() && fonts.iter().all(|(_, embedded)| *embedded),
            "{fonts:?}"
        );
    }
    let (_, ua) = export(
        &app,
        "report3.docx",
        report(),
        json!({"pdf_a": "2b", "pdf_ua": true}),
    )
    .await;
    assert!(pdf::catalog_has(&ua, "StructTreeRoot"), "tagged");
    assert_eq!(pdf::info(&ua, "Tagged"), "yes");
    assert!(String::from_utf8_lossy(&ua).contains("pdfuaid:part"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_options_turn_pages_and_stamp_them() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let report = || sample_bytes("report3.docx");
    let (_, portrait) = export(&app, "report3.docx", report(), json!({})).await;
    let (width, height) = pdf::page_size(&portrait);
    assert!(width < height);
    let (_, landscape) = export(&app, "report3.docx", report(), json!({"landscape": true})).await;
    let (width, height) = pdf::page_size(&landscape);
    assert!(width > height, "{width} x {height}");
    let (_, sheets) = export(
        &app,
        "sales.xlsx",
        sample_bytes("sales.xlsx"),
        json!({"landscape": true, "single_page_sheets": false}),
    )
    .await;
    let (width, height) = pdf::page_size(&sheets);
    assert!(width > height, "spreadsheets too: {width} x {height}");

    assert!(!pdf::text(&portrait).contains("CONFIDENTIAL"));
    let mark =
        json!({"watermark": {"text": "CONFIDENTIAL", "color": "#FF0000", "rotate_angle": 30}});
    let (_, stamped) = export(&app, "report3.docx", report(), mark).await;
    assert!(pdf::text(&stamped).contains("CONFIDENTIAL"));
    let tiled = json!({"watermark": {"text": "COPY", "tiled": true}});
    let (_, tiled) = export(&app, "report3.docx", report(), tiled).await;
    assert!(pdf::text(&tiled).contains("COPY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_options_change_the_file_size() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let photo = fixtures::odt_with_a_photo;
    let (_, plain) = export(&app, "photo.odt", photo(), json!({})).await;
    let (_, rough) = export(&app, "photo.odt", photo(), json!({"image_quality": 10})).await;
    let (_, small) = export(&app, "photo.odt", photo(), json!({"max_image_dpi": 75})).await;
    let (_, lossless) = export(&app, "photo.odt", photo(), json!({"lossless_images": true})).await;
    let sizes = [plain.len(), rough.len(), small.len(), lossless.len()];
    assert!(rough.len() < plain.len() / 2, "{sizes:?}");
    assert!(small.len() < plain.len() / 2, "{sizes:?}");
    assert!(lossless.len() > plain.len(), "{sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_and_bookmarks_follow_their_options() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let commented = fixtures::odt_with_a_comment;
    let (_, plain) = export(&app, "note.odt", commented(), json!({})).await;
    let (_, notes) = export(&app, "note.odt", commented(), json!({"export_notes": true})).await;
    assert_eq!(
        pdf::annotations(&plain, "Text"),
        0,
        "comments stay out by default"
    );
    assert!(pdf::annotations(&notes, "Text") >= 1);
    // Options that send FilterData keep LibreOffice's defaults for the rest: no comments.
    let (_, other) = export(&app, "note.odt", commented(), json!({"image_quality": 50})).await;
    assert_eq!(pdf::annotations(&other, "Text"), 0);

    let deck = || sample_bytes("deck5.pptx");
    let (_, marked) = export(&app, "deck5.pptx", deck(), json!({})).await;
    let (_, unmarked) = export(
        &app,
        "deck5.pptx",
        deck(),
        json!({"export_bookmarks": false}),
    )
    .await;
    assert!(pdf::catalog_has(&marked, "Outlines"));
    assert!(!pdf::catalog_has(&unmarked, "Outlines"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_are_refused_at_submit_naming_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let cases: &[(&str, Value, &str)] = &[
        (
            "page_range",
            json!({"page_range": "3-1"}),
            "options.page_range",
        ),
        (
            "unknown option",
            json!({"page_rnage": "1"}),
            "options.page_rnage",
        ),
        ("PDF/A level a", json!({"pdf_a": "1a"}), "options.pdf_a"),
        (
            "quality",
            json!({"image_quality": 0}),
            "options.image_quality",
        ),
        ("dpi", json!({"max_image_dpi": 5}), "options.max_image_dpi"),
        (
            "colour",
            json!({"watermark": {"text": "x", "color": "red"}}),
            "options.watermark.color",
        ),
        (
            "tiled and styled",
            json!({"watermark": {"text": "x", "tiled": true, "rotate_angle": 10}}),
            "options.watermark.tiled",
        ),
        (
            "UA on PDF/A-1",
            json!({"pdf_a": "1b", "pdf_ua": true}),
            "options.pdf_ua",
        ),
        (
            "range of sheets on one page",
            json!({"page_range": "1", "single_page_sheets": true}),
            "options.single_page_sheets",
        ),
        ("not JSON", json!("{"), "options"),
    ];
    for (what, options, field) in cases {
        let text = match options {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let form = Form::new()
            .part(
                "file",
                Part::bytes(sample_bytes("deck5.pptx")).file_name("deck5.pptx"),
            )
            .text("options", text);
        let resp = app.post_form(form).await;
        assert_eq!(resp.status(), 422, "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "invalid_option", "{what}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{what}: {body}"
        );
    }
    // PDF/A cannot survive joining PDFs: refused for a merge.
    let form = Form::new()
        .part(
            "file",
            Part::bytes(sample_bytes("deck5.pptx")).file_name("a.pptx"),
        )
        .part(
            "file",
            Part::bytes(sample_bytes("report3.docx")).file_name("b.docx"),
        )
        .text("merge", "true")
        .text("options", r#"{"pdf_a": "2b"}"#);
    let resp = app.post_form(form).await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("merge"),
        "{body}"
    );
    let listed = app.list_jobs("").await;
    assert_eq!(
        listed["jobs"].as_array().unwrap().len(),
        0,
        "nothing was queued"
    );
}
