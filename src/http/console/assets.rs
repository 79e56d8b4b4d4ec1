//! The stylesheet and the script, compiled into the binary: no CDN, no
//! build step. The script only adds copy buttons; every form works
//! without it.

use actix_web::{HttpResponse, web};

pub const STYLE_PATH: &str = "/ui/assets/console.css";
pub const SCRIPT_PATH: &str = "/ui/assets/console.js";

const STYLE: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/console.css", web::get().to(style))
        .route("/assets/console.js", web::get().to(script));
}

async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        // Small, and changed by upgrades: checked again on every use.
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}
