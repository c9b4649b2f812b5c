//! The page itself: `index.html`, one file with its style, its script
//! and the repository's facts inline; the packages are in the runs'
//! scripts beside it (`site/STEM.js`, [`crate::site`]), which the page's
//! script adds, so it works from `file://` (a page may load a script
//! beside it, not fetch a file), behind CloudFront's Basic auth and
//! through `pkgsum gateway` alike, with nothing fetched from anywhere
//! else. A Content-Security-Policy in the page allows its own script and
//! style (by their SHA-256), and through `'strict-dynamic'` the scripts
//! that script adds (only run files, by names it checks); nothing else:
//! no other script, no inline handler, no image, no connection. The facts
//! are JSON inside a `<script type="application/json">` element, never
//! executed, whose strings cannot close it ([`crate::site`]'s escaping).

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The page's script and style, as served.
pub const SCRIPT: &str = include_str!("app.js");
pub const STYLE: &str = include_str!("site.css");

/// `'sha256-…'` of `text`, as a CSP source.
fn csp_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// The Content-Security-Policy of the page.
pub fn policy() -> String {
    format!(
        "default-src 'none'; script-src {} 'strict-dynamic'; style-src {}; img-src 'none'; \
         base-uri 'none'; form-action 'none'",
        csp_hash(SCRIPT),
        csp_hash(STYLE)
    )
}

/// The page: `meta` (a JSON object, already escaped for a script
/// element) names the runs.
pub fn render(meta: &str) -> Vec<u8> {
    let head = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>pkgsrc packages</title>\n<style>{STYLE}</style></head>\n<body>\n\
         <header><h1>pkgsrc packages</h1><p id=\"summary\"></p>\
         <p>In <code>/usr/pkg/etc/pkgin/repositories.conf</code>: <code id=\"url\"></code></p></header>\n\
         <main><input id=\"q\" type=\"search\" placeholder=\"Filter by name, comment, PKGPATH, license, arch\" \
         aria-label=\"Filter packages\" autofocus>\n<p id=\"count\"></p>\n\
         <section id=\"detail\" hidden></section>\n\
         <table id=\"packages\"><thead><tr><th>Package</th><th>Version</th><th>Comment</th>\
         <th>Size</th><th>Built</th><th>PKGPATH</th><th>License</th><th>Arch</th>\
         <th class=\"sig\">Signature</th></tr></thead><tbody id=\"rows\"></tbody></table>\n\
         <h2>Vulnerabilities</h2><p id=\"vulncount\"></p><ul id=\"vulns\"></ul>\n\
         <h2>Recent changes</h2><ol id=\"changes\" reversed></ol></main>\n\
         <script type=\"application/json\" id=\"meta\">",
        policy()
    );
    let mut page = Vec::with_capacity(head.len() + meta.len() + SCRIPT.len() + 256);
    page.extend_from_slice(head.as_bytes());
    page.extend_from_slice(meta.as_bytes());
    page.extend_from_slice(b"</script>\n<script>");
    page.extend_from_slice(SCRIPT.as_bytes());
    page.extend_from_slice(b"</script>\n</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_script_and_style_served() {
        let page = String::from_utf8(render("{}")).unwrap();
        let policy = policy();
        assert!(page.contains(&policy));
        assert!(page.contains(&format!("<script>{SCRIPT}</script>")));
        assert!(page.contains(&format!("<style>{STYLE}</style>")));
        assert!(!policy.contains("unsafe"));
        // One script element that runs, and no external reference.
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    }
}
