//! The page frame and the pieces pages share. maud escapes every value
//! it is given: nothing an admin entered is ever written out raw.

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::assets::{SCRIPT_PATH, STYLE_PATH};
use super::session::Session;

/// The console's areas, as the navigation lists them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Area {
    Applications,
    Rules,
    TestAccess,
    Audit,
    SigningKeys,
    Fleet,
}

const AREAS: [(Area, &str, &str); 6] = [
    (Area::Applications, "Applications", "/ui/applications"),
    (Area::Rules, "Rules", "/ui/rules"),
    (Area::TestAccess, "Test access", "/ui/test-access"),
    (Area::Audit, "Audit", "/ui/audit"),
    (Area::SigningKeys, "Signing keys", "/ui/keys"),
    (Area::Fleet, "Fleet", "/ui/fleet"),
];

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="referrer" content="no-referrer";
            title { (title) " · gatehouse console" }
            link rel="stylesheet" href=(STYLE_PATH);
            script src=(SCRIPT_PATH) defer {}
        }
    }
}

/// A page of a signed-in session: navigation, sign-out, the flash
/// message of the last action, the page's own heading and body.
pub fn page(title: &str, area: Area, session: &Session, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/ui/applications" { "gatehouse" span.muted { " console" } }
                    nav aria-label="Console" {
                        ul {
                            @for (each, label, href) in AREAS {
                                li {
                                    @if each == area {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    form.sign-out method="post" action="/ui/sign-out" {
                        (csrf(session))
                        button.secondary type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    @if let Some(flash) = &session.flash {
                        p.alert.ok role="status" { (flash) }
                    }
                    (body)
                }
            }
        }
    }
}

/// A page outside a session: sign-in, errors, a replica's pointer.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/ui/" { "gatehouse" span.muted { " console" } }
                }
                main #main .narrow {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A secret shown once: read-only, selectable, with a copy button (the
/// script wires it; without script the text is selected by hand).
pub fn secret(id: &str, label: &str, value: &str) -> Markup {
    html! {
        div.secret {
            label for=(id) { (label) }
            div.copy-row {
                input #(id) type="text" readonly value=(value) autocomplete="off" spellcheck="false";
                button.secondary type="button" data-copy=(id) { "Copy" }
            }
        }
    }
}

/// A block of text to paste (a shell snippet), with a copy button.
pub fn snippet(id: &str, label: &str, text: &str) -> Markup {
    html! {
        figure.snippet {
            figcaption { (label) }
            pre #(id) tabindex="0" { code { (text) } }
            button.secondary type="button" data-copy=(id) { "Copy" }
        }
    }
}

/// A warning that a secret is shown only this once.
pub fn shown_once(what: &str) -> Markup {
    html! {
        p.alert.warn role="alert" {
            strong { "Copy the " (what) " now." }
            " It is shown only this once: gatehouse does not store it, and this page is not cached."
        }
    }
}

pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M UTC")) } }
}

pub fn maybe_time(at: Option<DateTime<Utc>>, none: &str) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { (none) } },
    }
}

/// A list as the forms take it: comma-separated.
pub fn joined(items: &[String]) -> String {
    items.join(", ")
}

/// The items of a comma- (or space-) separated form field.
pub fn split_list(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n', '\r', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A form field that may be left empty: `None` when it is.
pub fn optional(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// A labelled text input, its id its name.
pub fn field(name: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    field_as(name, name, label, value, hint)
}

/// A labelled text input with an id of its own (where two forms of one
/// page have a field of the same name).
pub fn field_as(id: &str, name: &str, label: &str, value: &str, hint: Option<&str>) -> Markup {
    let hint_id = format!("{id}-hint");
    html! {
        div.field {
            label for=(id) { (label) }
            @if let Some(hint) = hint {
                input #(id) type="text" name=(name) value=(value) aria-describedby=(hint_id);
                small #(hint_id) .hint { (hint) }
            } @else {
                input #(id) type="text" name=(name) value=(value);
            }
        }
    }
}

/// A labelled checkbox.
pub fn checkbox(name: &str, label: &str, checked: bool) -> Markup {
    html! {
        div.field.check {
            input #(name) type="checkbox" name=(name) value="on" checked[checked];
            label for=(name) { (label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(split_list(" a, b  c,,\nd "), ["a", "b", "c", "d"]);
        assert!(split_list("  ").is_empty());
    }

    #[test]
    fn admin_entered_text_is_escaped() {
        let markup = field("name", "Name", "<script>alert(1)</script>\"", None).into_string();
        assert!(!markup.contains("<script>"), "{markup}");
        assert!(markup.contains("&lt;script&gt;"), "{markup}");
        assert!(markup.contains("&quot;"), "{markup}");
    }
}
