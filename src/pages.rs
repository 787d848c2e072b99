//! The people's pages, embedded in the binary from `frontend/`: `/` (upload), `/jobs/{id}`
//! and `/batches/{id}` (live progress), their assets under `/assets/`, and `/board` (a redirect to the board's
//! own listener).

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{EndpointExt, IntoResponse, Request, Response, Route, handler};
use rust_embed::Embed;

#[derive(Embed)]
#[folder = "frontend/"]
struct Frontend;

fn file(name: &str) -> Response {
    match Frontend::get(name) {
        Some(file) => {
            let kind = match name.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("css") => "text/css; charset=utf-8",
                Some("js") => "text/javascript; charset=utf-8",
                Some("svg") => "image/svg+xml",
                _ => "application/octet-stream",
            };
            Response::builder()
                .content_type(kind)
                // Pages and assets change with the binary; revalidate rather than serve stale.
                .header(header::CACHE_CONTROL, "no-cache")
                .body(file.data.into_owned())
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[handler]
fn index() -> Response {
    file("index.html")
}

#[handler]
fn job_page() -> Response {
    file("job.html")
}

#[handler]
fn batch_page() -> Response {
    file("batch.html")
}

#[handler]
fn asset(Path(name): Path<String>) -> Response {
    // Only the embedded files exist: a path like `../x` is simply not among them.
    file(&name)
}

/// Where `GET /board` sends a browser: the board's port on the host the browser used.
#[derive(Clone, Debug)]
pub struct BoardLink {
    pub port: Option<u16>,
}

#[handler]
fn board(req: &Request, link: poem::web::Data<&BoardLink>) -> Response {
    let Some(port) = link.port else {
        return (StatusCode::NOT_FOUND, "the board is off (BOARD_ADDR=off)").into_response();
    };
    let host = req
        .header(header::HOST)
        .and_then(|h| {
            h.rsplit_once(':')
                .map(|(host, _)| host.to_string())
                .or(Some(h.to_string()))
        })
        .unwrap_or_else(|| "127.0.0.1".into());
    // 302, as the contract says.
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, format!("http://{host}:{port}/"))
        .finish()
}

#[handler]
fn queues_page() -> Response {
    file("queues.html")
}

/// The operator's pages on the board's listener, under `/offload/` (the board's UI owns
/// every other path there): the list of every queue, which the board's prebuilt Queues page
/// cannot show (its table is fixed at one row).
pub fn board_routes() -> Route {
    Route::new()
        .at("/offload/queues", queues_page)
        .at("/offload/assets/:name", asset)
}

/// Adds the page routes to the API listener's routes.
pub fn add_routes(route: Route, link: BoardLink) -> Route {
    route
        .at("/", index)
        .at("/jobs/:id", job_page)
        .at("/batches/:id", batch_page)
        .at("/assets/:name", asset)
        .at("/board", board.data(link))
}
