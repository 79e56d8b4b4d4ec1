//! `GET /openapi.json` (every node): the OpenAPI 3.1 description of every
//! route, kept by hand in `openapi.json` beside this file. The tests below
//! hold it to the routes the code registers, both ways.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Bytes;

/// The document, as shipped.
pub const DOCUMENT: &[u8] = include_bytes!("openapi.json");

pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(Bytes::from_static(DOCUMENT))
}

#[cfg(test)]
mod tests {
    //! Actix cannot list its routes, so the route registrations are read
    //! from the sources of `src/http/`: `web::scope("…")` prefixes (over
    //! everything inside the `.service(…)` that holds them, and over the
    //! modules `.configure(module::…)`d there), `web::resource("…")` with
    //! its `.route(web::get()…)`s, `.route("…", web::post()…)`, and the
    //! `#[get("…")]` attribute macros. A form it does not know fails the
    //! test rather than being skipped.

    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::*;

    /// The methods an OpenAPI path item can hold; `web::route()` without a
    /// guard takes them all (and every other method).
    const METHODS: [&str; 8] = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    type Routes = BTreeSet<(String, String)>;

    /// `{name}` and `{name:regex}` alike become `{}`.
    fn normalize(path: &str) -> String {
        let mut out = String::new();
        let mut depth = 0;
        for c in path.chars() {
            match c {
                '{' => {
                    if depth == 0 {
                        out.push_str("{}");
                    }
                    depth += 1;
                }
                '}' => depth -= 1,
                _ if depth == 0 => out.push(c),
                _ => {}
            }
        }
        out
    }

    /// Where the text of a raw string starting at `i` begins, and how many
    /// `#` close it, if one starts there.
    fn raw_string(chars: &[char], i: usize) -> Option<(usize, usize)> {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        if i > 0 && ident(chars[i - 1]) {
            return None;
        }
        let start = match (chars.get(i), chars.get(i + 1)) {
            (Some('r'), _) => i + 1,
            (Some('b'), Some('r')) => i + 2,
            _ => return None,
        };
        let hashes = chars[start..].iter().take_while(|&&h| h == '#').count();
        (chars.get(start + hashes) == Some(&'"')).then_some((start + hashes + 1, hashes))
    }

    /// The source with comments and whitespace outside string literals
    /// removed and everything from `#[cfg(test)]` on cut off, so that
    /// patterns and parentheses are only those of code.
    fn code_of(src: &str) -> String {
        let chars: Vec<char> = src.chars().collect();
        let mut out = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            i = if c == '/' && next == Some('/') {
                skip_line_comment(&chars, i)
            } else if c == '/' && next == Some('*') {
                skip_block_comment(&chars, i)
            } else if let Some((body, hashes)) = raw_string(&chars, i) {
                copy_raw_string(&chars, body, hashes, &mut out)
            } else if c == '"' {
                copy_string(&chars, i, &mut out)
            } else if c == '\''
                && let Some(end) = char_literal_end(&chars, i)
            {
                // Its content could be a quote: it must not open a string.
                out.push_str("'?'");
                end
            } else if c.is_whitespace() {
                i + 1
            } else {
                out.push(c);
                i + 1
            };
        }
        match out.find("#[cfg(test)]") {
            Some(at) => out[..at].to_string(),
            None => out,
        }
    }

    /// Skips a `//` comment at `i`: the index of the newline that ends it.
    fn skip_line_comment(chars: &[char], i: usize) -> usize {
        chars[i..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |n| i + n)
    }

    /// Skips a `/* … */` comment at `i`, nested ones inside it included:
    /// the index after it.
    fn skip_block_comment(chars: &[char], mut i: usize) -> usize {
        let mut depth = 0;
        while i < chars.len() {
            if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                depth += 1;
                i += 2;
            } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    break;
                }
            } else {
                i += 1;
            }
        }
        i
    }

    /// Copies a raw string (`r"…"`, `r#"…"#`, `br"…"`) whose text starts at
    /// `body` and which `hashes` `#` close, re-quoted as a plain literal so
    /// that one pass skips both: the index after it.
    fn copy_raw_string(chars: &[char], body: usize, hashes: usize, out: &mut String) -> usize {
        let closing = ['#'].repeat(hashes);
        let mut end = body;
        while end < chars.len() && !(chars[end] == '"' && chars[end + 1..].starts_with(&closing)) {
            end += 1;
        }
        out.push('"');
        for &r in &chars[body..end.min(chars.len())] {
            if r == '"' || r == '\\' {
                out.push('\\');
            }
            out.push(r);
        }
        out.push('"');
        end + 1 + hashes
    }

    /// Copies a plain string literal at `i` (on its `"`), escapes and all:
    /// the index after it.
    fn copy_string(chars: &[char], mut i: usize, out: &mut String) -> usize {
        out.push('"');
        i += 1;
        while i < chars.len() && chars[i] != '"' {
            if chars[i] == '\\' {
                out.push(chars[i]);
                i += 1;
            }
            if i < chars.len() {
                out.push(chars[i]);
            }
            i += 1;
        }
        out.push('"');
        i + 1
    }

    /// Where a char literal at `i` (on its `'`) ends: one with an escape
    /// (`'\\'`, `'\u{..}'`) or a plain `'x'`. `None` where the `'` opens
    /// something else (a lifetime, a label).
    fn char_literal_end(chars: &[char], i: usize) -> Option<usize> {
        if chars.get(i + 1) == Some(&'\\') {
            let close = (i + 2..chars.len())
                .find(|&at| chars[at] == '\'')
                .unwrap_or(chars.len());
            Some(close + 1)
        } else if chars.get(i + 2) == Some(&'\'') {
            Some(i + 3)
        } else {
            None
        }
    }

    /// Skips a string literal starting at `at` (on its `"`); returns the
    /// index after it.
    fn skip_string(code: &[u8], at: usize) -> usize {
        let mut i = at + 1;
        while i < code.len() && code[i] != b'"' {
            if code[i] == b'\\' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    }

    /// The span `(open, close)` of the innermost parenthesised group that
    /// holds `at`.
    fn enclosing(code: &str, at: usize) -> (usize, usize) {
        let bytes = code.as_bytes();
        // Every group's span, by a forward pass that skips strings.
        let mut stack = Vec::new();
        let mut best: Option<(usize, usize)> = None;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => {
                    i = skip_string(bytes, i);
                    continue;
                }
                b'(' => stack.push(i),
                b')' => {
                    if let Some(open) = stack.pop()
                        && open < at
                        && at < i
                        && best.is_none_or(|(o, _)| open > o)
                    {
                        best = Some((open, i));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        best.unwrap_or_else(|| panic!("no group encloses offset {at}"))
    }

    /// The string literal starting at `at`.
    fn literal(code: &str, at: usize) -> String {
        let end = skip_string(code.as_bytes(), at);
        code[at + 1..end - 1].to_string()
    }

    /// `web::get()` and kin at `at`: the methods it takes.
    fn methods_at(code: &str, at: usize, file: &str) -> Vec<String> {
        let rest = &code[at..];
        for method in METHODS {
            if rest.starts_with(&format!("web::{method}()")) {
                return vec![method.to_string()];
            }
        }
        if let Some(guarded) = rest.strip_prefix("web::route()") {
            if guarded.starts_with(".guard(") {
                panic!("{file}: a guarded web::route() is not understood: {rest:.80}");
            }
            if let Some(named) = guarded.strip_prefix(".method(Method::") {
                let name = named.split(')').next().unwrap_or_default();
                return vec![name.to_ascii_lowercase()];
            }
            return METHODS.iter().map(|m| m.to_string()).collect();
        }
        if let Some(named) = rest.strip_prefix("web::method(Method::") {
            let name = named.split(')').next().unwrap_or_default();
            return vec![name.to_ascii_lowercase()];
        }
        panic!("{file}: a route whose method is not understood: {rest:.80}");
    }

    /// Offsets of every occurrence of `pattern` in `code` that starts
    /// outside a string literal.
    fn find_all<'a>(code: &'a str, pattern: &'a str) -> impl Iterator<Item = usize> + 'a {
        let bytes = code.as_bytes();
        let mut in_string = vec![false; bytes.len()];
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'"' {
                let end = skip_string(bytes, i).min(bytes.len());
                in_string[i + 1..end].iter_mut().for_each(|b| *b = true);
                i = end;
            } else {
                i += 1;
            }
        }
        code.match_indices(pattern)
            .map(|(at, _)| at)
            .filter(move |&at| !in_string[at])
    }

    /// The routes of a set of sources, `(file stem, source)`, where `mod`
    /// is the one that configures the others.
    fn registered_routes(sources: &BTreeMap<String, String>) -> Routes {
        let code: BTreeMap<&str, String> = sources
            .iter()
            .map(|(name, src)| (name.as_str(), code_of(src)))
            .collect();
        // Where each module is configured from: (caller, prefix there).
        let mut call_sites: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (file, code) in &code {
            for at in find_all(code, ".configure(") {
                let call = &code[at + ".configure(".len()..];
                if let Some((module, _)) = call.split_once("::") {
                    call_sites
                        .entry(module.to_string())
                        .or_default()
                        .push((file.to_string(), prefix_at(code, at)));
                }
            }
        }
        let module_prefixes: BTreeMap<String, Vec<String>> = code
            .keys()
            .map(|file| (file.to_string(), prefixes_of(&call_sites, file, 0)))
            .collect();
        let mut routes = Routes::new();
        for (file, code) in &code {
            for outer in outer_prefixes(&module_prefixes, file) {
                for (path, method) in routes_of(code, file) {
                    routes.insert((normalize(&format!("{outer}{path}")), method));
                }
            }
        }
        routes
    }

    fn outer_prefixes(module_prefixes: &BTreeMap<String, Vec<String>>, file: &str) -> Vec<String> {
        module_prefixes[file].clone()
    }

    /// Every prefix a module's routes get: those of the places that
    /// configure it, after their own modules' prefixes. A module nobody
    /// configures (`mod`, say) is at the root.
    fn prefixes_of(
        call_sites: &BTreeMap<String, Vec<(String, String)>>,
        file: &str,
        depth: usize,
    ) -> Vec<String> {
        assert!(depth < 16, "modules configure each other in a cycle");
        match call_sites.get(file) {
            None => vec![String::new()],
            Some(sites) => sites
                .iter()
                .flat_map(|(caller, prefix)| {
                    prefixes_of(call_sites, caller, depth + 1)
                        .into_iter()
                        .map(move |outer| format!("{outer}{prefix}"))
                })
                .collect(),
        }
    }

    /// The scope prefixes that hold offset `at`, outermost first.
    fn prefix_at(code: &str, at: usize) -> String {
        let mut scopes: Vec<((usize, usize), String)> = find_all(code, "web::scope(\"")
            .map(|s| (enclosing(code, s), literal(code, s + "web::scope(".len())))
            .filter(|((open, close), _)| *open < at && at < *close)
            .collect();
        scopes.sort();
        scopes.into_iter().map(|(_, p)| p).collect()
    }

    /// One file's routes, with its own scopes applied.
    fn routes_of(code: &str, file: &str) -> Vec<(String, String)> {
        let mut routes = Vec::new();
        // web::resource("…") (or a local resource("…") helper that wraps
        // it) and the .route(web::…) calls in its chain.
        let resources: Vec<((usize, usize), String)> = find_all(code, "resource(\"")
            .map(|at| (enclosing(code, at), literal(code, at + "resource(".len())))
            .collect();
        let mut used: BTreeSet<usize> = BTreeSet::new();
        for at in find_all(code, ".route(web::") {
            let (index, (_, path)) = resources
                .iter()
                .enumerate()
                .filter(|(_, ((open, close), _))| *open < at && at < *close)
                .max_by_key(|(_, ((open, _), _))| *open)
                .unwrap_or_else(|| panic!("{file}: .route(web::…) outside a resource"));
            used.insert(index);
            let prefix = prefix_at(code, at);
            for method in methods_at(code, at + ".route(".len(), file) {
                routes.push((format!("{prefix}{path}"), method));
            }
        }
        for (index, (_, path)) in resources.iter().enumerate() {
            assert!(
                used.contains(&index),
                "{file}: web::resource({path:?}) has no .route(web::…) this test understands"
            );
        }
        // .route("…", web::…) on an App, a scope or a ServiceConfig.
        for at in find_all(code, ".route(\"") {
            let path_at = at + ".route(".len();
            let path = literal(code, path_at);
            let method_at = skip_string(code.as_bytes(), path_at) + 1;
            let prefix = prefix_at(code, at);
            for method in methods_at(code, method_at, file) {
                routes.push((format!("{prefix}{path}"), method));
            }
        }
        // #[get("…")] and kin.
        for method in METHODS {
            for at in find_all(code, &format!("#[{method}(\"")) {
                let path = literal(code, at + format!("#[{method}(").len());
                routes.push((path, method.to_string()));
            }
        }
        assert!(
            !code.contains("#[route(\""),
            "{file}: #[route(…)] is not understood"
        );
        routes
    }

    fn http_sources() -> BTreeMap<String, String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http");
        std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "rs"))
            .map(|path| {
                (
                    path.file_stem().unwrap().to_string_lossy().into_owned(),
                    std::fs::read_to_string(&path).unwrap(),
                )
            })
            .collect()
    }

    fn document_json() -> serde_json::Value {
        serde_json::from_slice(DOCUMENT).expect("openapi.json is not JSON")
    }

    fn documented_routes(doc: &serde_json::Value) -> Routes {
        let paths = doc["paths"].as_object().expect("no paths object");
        paths
            .iter()
            .flat_map(|(path, item)| {
                METHODS
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .map(move |m| (normalize(path), m.to_string()))
            })
            .collect()
    }

    fn differences(code: &Routes, doc: &Routes) -> String {
        let missing: Vec<_> = code.difference(doc).collect();
        let extra: Vec<_> = doc.difference(code).collect();
        let mut report = String::new();
        if !missing.is_empty() {
            report.push_str(&format!(
                "registered but not in src/http/openapi.json: {missing:?}\n"
            ));
        }
        if !extra.is_empty() {
            report.push_str(&format!(
                "in src/http/openapi.json but not registered: {extra:?}\n"
            ));
        }
        report
    }

    #[test]
    fn every_registered_route_is_documented_and_every_documented_one_registered() {
        let code = registered_routes(&http_sources());
        // The scanner must at least see the routes everyone knows about.
        for known in [
            ("/api/verify", "patch"),
            ("/oauth/token", "post"),
            ("/openapi.json", "get"),
            ("/admin/v1/applications/{}", "delete"),
        ] {
            assert!(
                code.contains(&(known.0.to_string(), known.1.to_string())),
                "the route scanner missed {known:?}; it found {code:?}"
            );
        }
        let doc = documented_routes(&document_json());
        let report = differences(&code, &doc);
        assert!(report.is_empty(), "{report}");
    }

    /// Two modules, `mod` and the `admin` it configures under a scope, with
    /// every registration form the scanner knows and, in comments, strings
    /// and test code, routes it must not see.
    fn two_module_sources() -> BTreeMap<String, String> {
        let mut sources = BTreeMap::new();
        sources.insert(
            "mod".to_string(),
            r###"
            pub fn configure(cfg: &mut web::ServiceConfig) {
                // cfg.route("/commented", web::get().to(x));
                /* web::resource("/blocked") */
                let _ = r#"web::resource("/raw")"#;
                let _ = '"';
                let _ = "cfg.route(\"/quoted\", web::get().to(x))";
                cfg.route("/any", web::route().to(verify))
                    .route("/fake", web::get().to(fake))
                    .service(
                        web::resource("/thing/{id:\\d+}")
                            .route(web::post().to(h))
                            .default_service(web::to(nope)),
                    )
                    .service(web::scope("/admin/v1").wrap(m).configure(admin::configure));
            }
            #[cfg(test)]
            mod tests { fn f() { cfg.route("/test-only", web::get().to(x)); } }
            "###
            .to_string(),
        );
        sources.insert(
            "admin".to_string(),
            r#"
            pub fn configure(cfg: &mut web::ServiceConfig) {
                cfg.service(
                    web::resource("/keys/{kid}")
                        .route(web::get().to(a))
                        .route(web::delete().to(b)),
                )
                .service(web::scope("/nested").route("/x", web::put().to(c)));
            }
            "#
            .to_string(),
        );
        sources
    }

    #[test]
    fn the_scanner_sees_scopes_resources_modules_and_ignores_comments() {
        let routes = registered_routes(&two_module_sources());
        let mut expected: Routes = METHODS
            .iter()
            .map(|m| ("/any".to_string(), m.to_string()))
            .collect();
        for (path, method) in [
            ("/fake", "get"),
            ("/thing/{}", "post"),
            ("/admin/v1/keys/{}", "get"),
            ("/admin/v1/keys/{}", "delete"),
            ("/admin/v1/nested/x", "put"),
        ] {
            expected.insert((path.to_string(), method.to_string()));
        }
        assert_eq!(routes, expected);

        // A route the document lacks is reported, and so is one it has in excess.
        let mut doc = expected.clone();
        doc.remove(&("/fake".to_string(), "get".to_string()));
        doc.insert(("/ghost".to_string(), "get".to_string()));
        let report = differences(&routes, &doc);
        assert!(report.contains("/fake"), "{report}");
        assert!(report.contains("/ghost"), "{report}");
    }

    #[test]
    #[should_panic(expected = "has no .route(web::")]
    fn a_resource_registered_in_an_unknown_form_fails() {
        let mut sources = BTreeMap::new();
        sources.insert(
            "mod".to_string(),
            r#"fn configure(cfg: &mut web::ServiceConfig) { cfg.service(web::resource("/x").to(h)); }"#
                .to_string(),
        );
        registered_routes(&sources);
    }

    #[test]
    fn the_document_is_openapi_3_1_and_hangs_together() {
        let doc = document_json();
        let version = doc["openapi"].as_str().expect("no openapi version");
        assert!(version.starts_with("3.1."), "openapi {version}");
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        assert_every_ref_resolves(&doc);
        assert_operations_hang_together(&doc);
    }

    /// Every `$ref` points at something.
    fn assert_every_ref_resolves(doc: &serde_json::Value) {
        fn refs<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                        out.push(r);
                    }
                    map.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(doc, &mut all);
        for r in all {
            let pointer = r.strip_prefix('#').expect("only local $refs");
            assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
        }
    }

    /// Operations: unique ids, responses, their path parameters declared,
    /// and only security schemes the document defines.
    fn assert_operations_hang_together(doc: &serde_json::Value) {
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            let names = path_parameter_names(path);
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                assert!(
                    !op["responses"].as_object().unwrap().is_empty(),
                    "{method} {path}: no responses"
                );
                let declared = declared_path_parameters(doc, item, op);
                assert_eq!(declared, names, "{method} {path}: path parameters");
                for requirement in op["security"].as_array().into_iter().flatten() {
                    for scheme in requirement.as_object().unwrap().keys() {
                        assert!(schemes.contains_key(scheme), "unknown scheme {scheme}");
                    }
                }
            }
        }
    }

    /// The `{name}`s in a path.
    fn path_parameter_names(path: &str) -> BTreeSet<String> {
        path.split('{')
            .skip(1)
            .map(|p| p.split('}').next().unwrap().to_string())
            .collect()
    }

    /// The path parameters an operation declares, with those of its path
    /// item, `$ref`s resolved.
    fn declared_path_parameters(
        doc: &serde_json::Value,
        item: &serde_json::Value,
        op: &serde_json::Value,
    ) -> BTreeSet<String> {
        let resolve = |v: &serde_json::Value| -> serde_json::Value {
            match v.get("$ref").and_then(|r| r.as_str()) {
                Some(r) => doc.pointer(&r[1..]).unwrap().clone(),
                None => v.clone(),
            }
        };
        item.get("parameters")
            .into_iter()
            .chain(op.get("parameters"))
            .flat_map(|p| p.as_array().unwrap())
            .map(resolve)
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[actix_web::test]
    async fn the_document_is_served_as_json() {
        use actix_web::{App, test, web};
        let app =
            test::init_service(App::new().route("/openapi.json", web::get().to(document))).await;
        let response = test::call_service(
            &app,
            test::TestRequest::get().uri("/openapi.json").to_request(),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body = test::read_body(response).await;
        assert_eq!(&body[..], DOCUMENT);
    }
}
