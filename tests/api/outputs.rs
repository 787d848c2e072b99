//! Beyond PDF: page images rendered from the export's own PDF (one per page, a zip of them,
//! each downloadable), thumbnails, and office formats that open again. Real LibreOffice, real
//! pdftoppm and cwebp, real decoders (Pillow, openpyxl).

use std::io::Read;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::fixtures::test_python;
use crate::helpers::*;
use crate::pdf;

fn form(name: &str, bytes: Vec<u8>, format: &str, options: Value) -> Form {
    Form::new()
        .part("file", Part::bytes(bytes).file_name(name.to_string()))
        .text("format", format.to_string())
        .text("options", options.to_string())
}

/// Exports `name` as `format` and waits: the finished job.
async fn export(api: &Api, name: &str, format: &str, options: Value) -> Value {
    let bytes = std::fs::read(sample(name)).unwrap();
    export_bytes(api, name, bytes, form_of(format, options)).await
}

fn form_of(format: &str, options: Value) -> impl Fn(&str, Vec<u8>) -> Form {
    let (format, options) = (format.to_string(), options);
    move |name, bytes| form(name, bytes, &format, options.clone())
}

async fn export_bytes(
    api: &Api,
    name: &str,
    bytes: Vec<u8>,
    make: impl Fn(&str, Vec<u8>) -> Form,
) -> Value {
    let resp = api.post_form(make(name, bytes)).await;
    assert_eq!(resp.status(), 202, "{name}: {}", resp.text().await.unwrap());
    let job: Value = resp.json().await.unwrap();
    let done = api.wait_final(&id_of(&job)).await;
    assert_eq!(done["status"], "succeeded", "{name}: {done}");
    done
}

async fn bytes_at(api: &Api, path: &str) -> (String, Vec<u8>) {
    let resp = api.get(path).await;
    assert_eq!(resp.status(), 200, "{path}");
    let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
    (kind, resp.bytes().await.unwrap().to_vec())
}

/// Decodes images with Pillow: `(format, width, height)` of each file.
fn decoded(files: &[Vec<u8>]) -> Vec<(String, u32, u32)> {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = files
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = dir.path().join(format!("image-{i}"));
            std::fs::write(&path, bytes).unwrap();
            path.display().to_string()
        })
        .collect();
    let script = "import sys\nfrom PIL import Image\nfor p in sys.argv[1:]:\n    im = Image.open(p); im.load(); print(im.format, im.width, im.height)";
    let out = std::process::Command::new(test_python())
        .arg("-c")
        .arg(script)
        .args(&paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (
                w[0].to_string(),
                w[1].parse().unwrap(),
                w[2].parse().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deck_becomes_one_image_per_page_matching_its_pdf() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let job = export(&app, "deck5.pptx", "pdf", json!({})).await;
    let pdf_bytes = app.download(&id_of(&job)).await.bytes().await.unwrap();
    let (pw, ph) = pdf::page_size(&pdf_bytes);

    let done = export(&app, "deck5.pptx", "png", json!({"width": 640})).await;
    let result = &done["result"];
    assert_eq!(result["content_type"], "application/zip");
    let files = result["files"].as_array().unwrap();
    assert_eq!(files.len(), 5, "{result}");
    let mut images = Vec::new();
    for (i, file) in files.iter().enumerate() {
        assert_eq!(file["page"], i + 1);
        let (kind, bytes) = bytes_at(&app, file["url"].as_str().unwrap()).await;
        assert_eq!(kind, "image/png");
        assert_eq!(bytes.len() as u64, file["size"].as_u64().unwrap());
        images.push(bytes);
    }
    for (i, (format, w, h)) in decoded(&images).into_iter().enumerate() {
        assert_eq!((format.as_str(), w), ("PNG", 640), "page {}", i + 1);
        assert_eq!(
            (w, h),
            (
                files[i]["width"].as_u64().unwrap() as u32,
                files[i]["height"].as_u64().unwrap() as u32
            )
        );
        let aspect = f64::from(w) / f64::from(h);
        assert!(
            (aspect - pw / ph).abs() < 0.01,
            "page {}: {aspect} vs {}",
            i + 1,
            pw / ph
        );
    }
    // The zip holds every page, in order, byte for byte.
    let (_, zip) = bytes_at(&app, result["url"].as_str().unwrap()).await;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    assert_eq!(archive.len(), 5);
    for (i, image) in images.iter().enumerate() {
        let mut entry = archive.by_index(i).unwrap();
        assert_eq!(entry.name(), format!("deck5-{}.png", i + 1));
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert_eq!(&bytes, image, "zip entry {}", i + 1);
    }
    let missing = app
        .get(&format!("/api/v1/jobs/{}/result/files/6", id_of(&done)))
        .await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_sizes_and_image_formats_follow_the_options() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let two = export(
        &app,
        "deck5.pptx",
        "png",
        json!({"pages": "2-3", "height": 300}),
    )
    .await;
    let files = two["result"]["files"].as_array().unwrap();
    let pages: Vec<u64> = files.iter().map(|f| f["page"].as_u64().unwrap()).collect();
    assert_eq!(pages, [2, 3]);
    assert!(files.iter().all(|f| f["height"] == 300), "{files:?}");

    for (format, decoder, media) in [
        ("jpeg", "JPEG", "image/jpeg"),
        ("webp", "WEBP", "image/webp"),
    ] {
        let one = export(
            &app,
            "deck5.pptx",
            format,
            json!({"pages": "1", "width": 320}),
        )
        .await;
        let result = &one["result"];
        // One page: the image itself is the result.
        assert_eq!(result["content_type"], media, "{result}");
        let (kind, bytes) = bytes_at(&app, result["url"].as_str().unwrap()).await;
        assert_eq!(kind, media);
        let (got, w, _) = decoded(&[bytes]).remove(0);
        assert_eq!((got.as_str(), w), (decoder, 320));
    }
    let dpi = export(
        &app,
        "report3.docx",
        "png",
        json!({"pages": "1", "dpi": 72}),
    )
    .await;
    let page = &dpi["result"]["files"][0];
    let (pw, _) = pdf::page_size(
        &app.download(&id_of(
            &export(&app, "report3.docx", "pdf", json!({})).await,
        ))
        .await
        .bytes()
        .await
        .unwrap(),
    );
    // 72 DPI: one pixel per point.
    assert!(
        (page["width"].as_f64().unwrap() - pw).abs() <= 1.0,
        "{page} vs {pw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thumbnail_comes_with_any_export() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    for (name, format) in [("deck5.pptx", "pdf"), ("report3.docx", "docx")] {
        let bytes = std::fs::read(sample(name)).unwrap();
        let make = |name: &str, bytes: Vec<u8>| {
            form(name, bytes, format, json!({})).text("thumbnail", "120")
        };
        let done = export_bytes(&app, name, bytes, make).await;
        let thumb = &done["result"]["thumbnail"];
        assert_eq!(thumb["page"], 1, "{done}");
        let (kind, bytes) = bytes_at(&app, thumb["url"].as_str().unwrap()).await;
        assert_eq!(kind, "image/png");
        let (_, w, h) = decoded(&[bytes]).remove(0);
        assert_eq!(w.max(h), 120, "{name}: fits inside 120 px");
        let steps: Vec<&str> = done["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(steps, ["inspect", "convert", "render", "publish"]);
    }
    let plain = export(&app, "deck5.pptx", "pdf", json!({})).await;
    assert!(plain["result"]["thumbnail"].is_null());
    let none = app
        .get(&format!("/api/v1/jobs/{}/result/thumbnail", id_of(&plain)))
        .await;
    assert_eq!(none.status(), 404);
}

/// Page count of `bytes` (a document offload accepts) converted back to PDF by offload.
async fn pages_back(api: &Api, name: &str, bytes: Vec<u8>) -> usize {
    let done = export_bytes(api, name, bytes, form_of("pdf", json!({}))).await;
    pdf_pages(&api.download(&id_of(&done)).await.bytes().await.unwrap())
}

async fn office(api: &Api, name: &str, format: &str, options: Value) -> Vec<u8> {
    let done = export(api, name, format, options).await;
    assert!(
        done["result"]["filename"]
            .as_str()
            .unwrap()
            .ends_with(format),
        "{done}"
    );
    api.download(&id_of(&done))
        .await
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_office_output_opens_again() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let report_pages = pages_back(
        &app,
        "report3.docx",
        std::fs::read(sample("report3.docx")).unwrap(),
    )
    .await;
    for format in ["docx", "odt", "rtf"] {
        let bytes = office(&app, "report3.docx", format, json!({})).await;
        // Written by LibreOffice, not handed back: docx → docx is a new file too.
        assert_ne!(
            bytes,
            std::fs::read(sample("report3.docx")).unwrap(),
            "{format}"
        );
        let back = pages_back(&app, &format!("back.{format}"), bytes).await;
        assert!(
            back.abs_diff(report_pages) <= 1,
            "{format}: {back} pages, {report_pages} before"
        );
    }
    let text = pdf::text(
        &app.download(&id_of(
            &export(&app, "report3.docx", "pdf", json!({})).await,
        ))
        .await
        .bytes()
        .await
        .unwrap(),
    );
    let phrase: String = text
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    let txt = String::from_utf8(office(&app, "report3.docx", "txt", json!({})).await).unwrap();
    assert!(
        txt.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&phrase),
        "{phrase:?} not in the text"
    );
    let html = String::from_utf8(office(&app, "report3.docx", "html", json!({})).await).unwrap();
    assert!(html.to_lowercase().contains("<body"), "an HTML document");
    // One file: the report's picture is inside it, not beside it.
    assert!(html.contains("src=\"data:image/"), "images are embedded");
    assert!(html.contains(phrase.split(' ').next().unwrap()));

    for format in ["pptx", "odp"] {
        let bytes = office(&app, "deck5.pptx", format, json!({})).await;
        assert_eq!(
            pages_back(&app, &format!("back.{format}"), bytes).await,
            5,
            "{format}"
        );
    }
    for format in ["xlsx", "ods"] {
        let bytes = office(&app, "sales.xlsx", format, json!({})).await;
        let sheets = pages_back(&app, &format!("back.{format}"), bytes).await;
        assert_eq!(sheets, 2, "{format}: one page per sheet");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_rows_equal_the_sheets_cells() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let cells = |sheet: usize| {
        let script = "import sys, openpyxl\nws = openpyxl.load_workbook(sys.argv[1]).worksheets[int(sys.argv[2])]\nfor row in ws.iter_rows(values_only=True):\n    print('\\t'.join('' if v is None else str(v) for v in row))";
        let out = std::process::Command::new(test_python())
            .args(["-c", script])
            .arg(sample("sales.xlsx"))
            .arg(sheet.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for (sheet, separator) in [(1, ","), (2, ";")] {
        let options = json!({"csv": {"sheet": sheet, "separator": separator}});
        let csv = String::from_utf8(office(&app, "sales.xlsx", "csv", options).await).unwrap();
        let expected = cells(sheet - 1);
        let rows: Vec<Vec<String>> = csv
            .lines()
            .map(|l| {
                l.split(separator)
                    .map(|c| c.trim_matches('"').to_string())
                    .collect()
            })
            .collect();
        let want: Vec<Vec<String>> = expected
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        assert_eq!(rows.len(), want.len(), "sheet {sheet}: rows");
        for (got, want) in rows.iter().zip(&want) {
            assert_eq!(got.len(), want.len(), "sheet {sheet}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(want) {
                // A formula (`=D2*E2`) has no stored value in this file: LibreOffice computed one.
                let computed = w.starts_with('=') && g.parse::<f64>().is_ok();
                let number = matches!((g.parse::<f64>(), w.parse::<f64>()),
                    (Ok(a), Ok(b)) if (a - b).abs() < 1e-9);
                // openpyxl prints dates with their time of day.
                let date = w.strip_suffix(" 00:00:00") == Some(g.as_str());
                let same = g == w || computed || number || date;
                assert!(same, "sheet {sheet}: {g:?} vs {w:?}");
            }
        }
    }
}

#[tokio::test]
async fn impossible_outputs_are_refused_at_submit() {
    let app = spawn_app(Backend::Sqlite).await;
    let formats = app.json("/api/v1/formats").await;
    let pptx = formats["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["extension"] == "pptx")
        .unwrap();
    assert_eq!(
        pptx["outputs"],
        json!(["pdf", "png", "jpeg", "webp", "pptx", "odp"])
    );
    let deck = || std::fs::read(sample("deck5.pptx")).unwrap();
    let cases = [
        (
            form("deck5.pptx", deck(), "docx", json!({})),
            "unsupported_conversion",
            "field format",
        ),
        (
            form("deck5.pptx", deck(), "png", json!({}))
                .text("merge", "true")
                .part("file", Part::bytes(deck()).file_name("b.pptx")),
            "unsupported_conversion",
            "merge",
        ),
        (
            form("deck5.pptx", deck(), "pdf", json!({"width": 100})),
            "invalid_option",
            "options.width",
        ),
        (
            form("deck5.pptx", deck(), "pdf", json!({}))
                .text("merge", "true")
                .text("thumbnail", "100")
                .part("file", Part::bytes(deck()).file_name("b.pptx")),
            "unsupported_conversion",
            "field thumbnail",
        ),
        (
            form(
                "deck5.pptx",
                deck(),
                "pptx",
                json!({"watermark": {"text": "x"}}),
            ),
            "invalid_option",
            "options.watermark",
        ),
        (
            form("deck5.pptx", deck(), "png", json!({"dpi": 5})),
            "invalid_option",
            "options.dpi",
        ),
        (
            form("deck5.pptx", deck(), "png", json!({})).text("thumbnail", "9000"),
            "invalid_arguments",
            "thumbnail",
        ),
    ];
    for (form, code, names) in cases {
        let resp = app.post_form(form).await;
        assert_eq!(resp.status(), 422);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["code"], code, "{body}");
        assert!(body["message"].as_str().unwrap().contains(names), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_render_leaves_no_renderer_behind() {
    require_libreoffice();
    let app = spawn_app(Backend::Sqlite).await;
    let bytes = std::fs::read(sample("deck50.pptx")).unwrap();
    let resp = app
        .post_form(form("deck50.pptx", bytes, "png", json!({"width": 4000})))
        .await;
    assert_eq!(resp.status(), 202);
    let id = id_of(&resp.json::<Value>().await.unwrap());
    let rendering = app
        .events_until(&id, |e| {
            e["progress"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("rendering"))
        })
        .await;
    assert!(
        rendering.last().unwrap()["progress"]["message"]
            .as_str()
            .unwrap()
            .starts_with("rendering"),
        "{rendering:?}"
    );
    let work = app.settings.work_dir().display().to_string();
    let renderers = || {
        offload::convert::process::processes()
            .into_iter()
            .filter(|(_, _, cmd)| {
                cmd.contains(&work) && (cmd.contains("mutool") || cmd.contains("pdftoppm"))
            })
            .count()
    };
    // Process starts and exits are not events we can await from here: poll the table briefly.
    let until = |want_running: bool| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while (renderers() > 0) != want_running {
            assert!(
                std::time::Instant::now() < deadline,
                "renderer running: {}",
                renderers()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    until(true).await;
    assert_eq!(app.cancel(&id).await.status(), 200);
    let done = app.wait_final(&id).await;
    assert_eq!(done["status"], "cancelled");
    until(false).await;
}
