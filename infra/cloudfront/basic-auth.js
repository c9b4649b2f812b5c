// pkgsum: HTTP Basic in front of a private pkgsrc repository on CloudFront
// (viewer request, JavaScript runtime 2.0). libfetch sends the user and
// password of https://USER:PASSWORD@HOST/ as Basic on every request. The
// KeyValueStore holds, per user, the hex SHA-256 of the password: use long
// random passwords, since CloudFront Functions offer no slow hash.
//
// The distribution's origin path is the repository prefix, so the
// repository sits at the root: a request must name one file directly
// there (a package, a summary, the site's page), or one of the site's run
// files under site/ by pkgsum's own names; never a hidden file, another
// subdirectory, an encoded character or a dot segment. The root itself
// is the site's page.
import cf from 'cloudfront';
const crypto = require('crypto');

const kvs = cf.kvs();
const NAME = /^\/[A-Za-z0-9_+,@=-][A-Za-z0-9._+,@=-]*$/;
const RUN_FILE = /^\/site\/[0-9]{1,20}-[0-9a-f]{16}(\.js|\.details\.js|\.json)$/;

function refuse(statusCode, statusDescription, headers) {
    return { statusCode, statusDescription, headers: headers || {} };
}

function challenge() {
    return refuse(401, 'Unauthorized', {
        'www-authenticate': { value: 'Basic realm="pkgsum", charset="UTF-8"' },
    });
}

// Compares two hex digests without stopping at the first difference.
function same(a, b) {
    if (a.length !== b.length) {
        return false;
    }
    let diff = 0;
    for (let i = 0; i < a.length; i++) {
        diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    }
    return diff === 0;
}

async function admitted(header) {
    if (!header || !header.value.startsWith('Basic ')) {
        return false;
    }
    const decoded = Buffer.from(header.value.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 1) {
        return false;
    }
    const user = decoded.slice(0, colon);
    const digest = crypto.createHash('sha256').update(decoded.slice(colon + 1)).digest('hex');
    let stored;
    try {
        stored = await kvs.get(user);
    } catch (e) {
        // An unknown user: compared anyway, so timing does not tell.
        stored = '0'.repeat(64);
        same(digest, stored);
        return false;
    }
    return same(digest, String(stored).trim().toLowerCase());
}

async function handler(event) {
    const request = event.request;
    if (!(await admitted(request.headers.authorization))) {
        return challenge();
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
        return refuse(405, 'Method Not Allowed', { allow: { value: 'GET, HEAD' } });
    }
    if (request.uri === '/') {
        request.uri = '/index.html';
    }
    if (!NAME.test(request.uri) && !RUN_FILE.test(request.uri)) {
        return refuse(404, 'Not Found');
    }
    // The origin is signed by origin access control; the viewer's
    // credentials go no further.
    delete request.headers.authorization;
    return request;
}
